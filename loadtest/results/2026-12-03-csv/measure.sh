#!/usr/bin/env bash
# Interleaved: before the redesign (2cabddb + the one-line fix, the lead's binary) and this branch, 3 rounds.
set -u
out=${1:?out dir}
mkdir -p "$out"
for round in ${ROUNDS:-1 2 3}; do
  echo "== round $round before $(date -u +%T) $(uptime)" | tee -a "$out/${RUNS:-runs.txt}"
  (cd /work/wt/before12/examples && /tmp/ex-before.test -test.run '^$' -test.bench 'BenchmarkEPDPatientsToMailbox$' -test.benchtime 10x) 2>&1 | grep Benchmark | tee -a "$out/${RUNS:-runs.txt}"
  echo "== round $round after $(date -u +%T) $(uptime)" | tee -a "$out/${RUNS:-runs.txt}"
  (cd /work/wt/engine/examples && /tmp/engine-final.test -test.run '^$' -test.bench 'BenchmarkEPDPatientsToMailbox$' -test.benchtime 2x) 2>&1 | grep Benchmark | tee -a "$out/${RUNS:-runs.txt}"
done
echo "== end $(date -u +%T) $(uptime)" | tee -a "$out/${RUNS:-runs.txt}"
