#!/usr/bin/env bash
# Interleaved, 3 rounds: before the redesign (2cabddb + the one-line fix), main of 11:28 (the lead's
# /work/wt/after12), and main 80ff4bf (this work).
set -u
out=${1:?out dir}
mkdir -p "$out"
bench() { (cd "$1" && "$2" -test.run '^$' -test.bench 'BenchmarkEPDPatientsToMailbox$' -test.benchtime "$3") 2>&1 | grep Benchmark | tee -a "$out/runs3.txt"; }
for round in 1 2 3; do
  echo "== round $round before12 $(date -u +%T) $(uptime)" | tee -a "$out/runs3.txt"
  bench /work/wt/before12/examples /tmp/ex-before.test 10x
  echo "== round $round after12 $(date -u +%T) $(uptime)" | tee -a "$out/runs3.txt"
  bench /work/wt/after12/examples /tmp/ex-after.test 2x
  echo "== round $round 80ff4bf $(date -u +%T) $(uptime)" | tee -a "$out/runs3.txt"
  bench /work/wt/engine/examples /tmp/engine-final.test 2x
done
echo "== end $(date -u +%T) $(uptime)" | tee -a "$out/runs3.txt"
