# A private PostgreSQL cluster on 127.0.0.1 for CI, sourced by .ci/run (and by TestCIPostgresPicksAnotherPort
# in store/storetest, which holds the port it asks for). Needs PGBIN (initdb, pg_ctl) and PGDIR (an empty
# folder the postgres user owns); pg_start sets PGPORT.
#
# The port: KOPPELPOORT_CI_PGPORT, else a random free one in 20000-29999 — below the kernel's range for
# outgoing connections (32768-60999), where a fixed port can be taken by any client socket — tried up to
# five times, since a port free when checked can be taken before PostgreSQL binds it (issue 14, defect 28:
# the fixed 55439 once was).
declare -F log >/dev/null || log() { printf '\n=== %s\n' "$*"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_start() {
  su postgres -s /bin/sh -c "'$PGBIN/initdb' -D '$PGDIR/data' -A trust -U postgres" >"$PGDIR/initdb.log" 2>&1 \
    || { cat "$PGDIR/initdb.log"; return 1; }
  PGPORT=${KOPPELPOORT_CI_PGPORT:-}
  local try started=
  for try in 1 2 3 4 5; do
    if [ -z "$PGPORT" ] || [ "$try" -gt 1 ]; then
      PGPORT=$((20000 + RANDOM % 10000))
    fi
    if port_busy "$PGPORT"; then
      echo "port $PGPORT is in use; trying another"
      continue
    fi
    log "starting PostgreSQL on 127.0.0.1:$PGPORT (try $try)"
    if su postgres -s /bin/sh -c "'$PGBIN/pg_ctl' -D '$PGDIR/data' -l '$PGDIR/server.log' -w \
        -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c max_connections=300 -c fsync=on\" start" >/dev/null; then
      started=1
      break
    fi
    tail -n 5 "$PGDIR/server.log" || true
  done
  [ -n "$started" ] || { echo "PostgreSQL did not start after 5 tries" >&2; cat "$PGDIR/server.log"; return 1; }
}

pg_stop() {
  su postgres -s /bin/sh -c "'$PGBIN/pg_ctl' -D '$PGDIR/data' -m fast stop" >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
}
