#!/bin/bash
# Issue 15, session 6: the side-by-side round on main dc1633b (the sampled keeper), quiet machine.
DSN='postgres://postgres@127.0.0.1:5439/postgres?sslmode=disable'
cd /tmp/r8
uptime > uptime-a.txt
/tmp/kp load --self --compare sqlite,postgres,postgres*2 --dsn "$DSN" --duration 30s --rate 1000 --consumers 6 --quiet --json a.json > a.txt 2>&1
uptime >> uptime-a.txt
sleep 20
uptime > uptime-b.txt
/tmp/kp load --self --compare sqlite,postgres --dsn "$DSN" --duration 30s --rate 300 --quiet --json b.json > b.txt 2>&1
uptime >> uptime-b.txt
sleep 20
uptime > uptime-c.txt
/tmp/kp load --self --duration 30s --rate 1200 --concurrency 128 --consumers 6 --quiet --json c.json > c.txt 2>&1
uptime >> uptime-c.txt
echo done > done
