#!/bin/bash
# usage: walrun.sh NAME — one PostgreSQL load leg at 300 msg/s for 30 s; WAL counters of the cluster around it
D='postgres://postgres@127.0.0.1:25439/postgres?sslmode=disable'
N=$1
psql $D -qAtc "CHECKPOINT" ; psql $D -qAtc "select pg_stat_reset_shared('wal')" >/dev/null
uptime > $N.uptime
/tmp/pgperf/kp load --self --dsn "$D" --duration 30s --rate 300 --consumers 6 --quiet --keep-data > $N.txt 2>&1
uptime >> $N.uptime
psql $D -Atc "select 'wal_compression='||current_setting('wal_compression')||' records='||wal_records||' fpi='||wal_fpi||' bytes='||wal_bytes||' syncs='||wal_sync from pg_stat_wal" > $N.wal
