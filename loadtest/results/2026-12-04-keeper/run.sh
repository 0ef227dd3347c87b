#!/bin/bash
# Issue 15, 2026-12-04: one side-by-side round (three runs) of the binary KP into directory OUT, on a quiet
# machine. before/ was main 13f79c6, after/ 75473f9, sampled/ dc1633b, each built with
#   go build -o /tmp/kp ./cmd/koppelpoort
# Usage: run.sh OUT   (KP defaults to /tmp/kp, DSN to the private PostgreSQL on port 5439)
set -eu
OUT=${1:?usage: run.sh OUT}
KP=${KP:-/tmp/kp}
DSN=${DSN:-'postgres://postgres@127.0.0.1:5439/postgres?sslmode=disable'}
mkdir -p "$OUT" && cd "$OUT"
run() { # name, then the load tool's arguments
  local name=$1; shift
  uptime > "uptime-$name.txt"
  "$KP" load --self "$@" --duration 30s --quiet --json "$name.json" > "$name.txt" 2>&1
  uptime >> "uptime-$name.txt"
}
run a --compare sqlite,postgres,postgres*2 --dsn "$DSN" --rate 1000 --consumers 6
sleep 20
run b --compare sqlite,postgres --dsn "$DSN" --rate 300
sleep 20
run c --rate 1200 --concurrency 128 --consumers 6
