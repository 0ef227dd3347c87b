#!/bin/bash
# The final measurement of issue 15's hot-path round (main 20749df), on a private PostgreSQL 15 cluster
# (initdb defaults, max_connections = 300, fsync = on, port 25439): the shared server on 5439 was down.
DSN='postgres://postgres@127.0.0.1:25439/postgres?sslmode=disable'
cd /tmp/pgperf/final2
uptime > uptime-a.txt
/tmp/pgperf/kpfinal load --self --compare sqlite,postgres,postgres*2 --dsn "$DSN" --duration 30s --rate 1000 --consumers 6 --quiet --json a.json --html a.html > a.txt 2>&1
uptime >> uptime-a.txt
uptime > uptime-b.txt
/tmp/pgperf/kpfinal load --self --compare sqlite,postgres --dsn "$DSN" --duration 30s --rate 300 --quiet --json b.json --html b.html > b.txt 2>&1
uptime >> uptime-b.txt
echo done > done
