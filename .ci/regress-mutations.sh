#!/usr/bin/env bash
# The mutation check of issue 10: re-introduce each fixed wire defect into a copy of this checkout, one at a
# time, run `koppelpoort regress` against `koppelpoort serve` built from it, and show that the suite fails
# and names the defect (the expected case ids must be among the failures). Not part of .ci/run (it builds
# the binary once per mutation, a few minutes in all); run it by hand from the repository root:
#     .ci/regress-mutations.sh            # every mutation
#     .ci/regress-mutations.sh defect3    # the mutations whose name matches
# Defect 6 (the position in a config YAML error) is not observable over HTTP: a unit test covers it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
pick=${1:-}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# run_suite builds the checkout at $1, serves it (demo domain, fresh SQLite) and prints the failing case
# names (id[format]) of a full regress run, then the counts.
run_suite() {
  local src=$1 work port pid
  work=$(mktemp -d /tmp/koppelpoort-mutation-run.XXXXXX)
  if ! (cd "$src" && go build -o "$work/koppelpoort" ./cmd/koppelpoort) >&2; then
    echo "build failed"
    return 1
  fi
  port=$((20000 + RANDOM % 10000)); while port_busy "$port"; do port=$((20000 + RANDOM % 10000)); done
  (cd "$work" && exec ./koppelpoort serve --addr "127.0.0.1:$port" >serve.out 2>serve.log) & pid=$!
  for _ in $(seq 100); do port_busy "$port" && break; sleep 0.2; done
  "$work/koppelpoort" regress --quiet "http://127.0.0.1:$port" >"$work/regress.txt" 2>&1 || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  grep -E '^FAIL ' "$work/regress.txt" | sed -E 's/^FAIL ([^ ]+) — .*/\1/' | sort
  grep -E '^regress ' "$work/regress.txt" | sed 's/.*— /counts: /'
  rm -rf "$work"
}

echo "baseline (this checkout, no mutation):"
baseline=$(run_suite "$ROOT")
printf '  %s\n' $(grep -v '^counts' <<<"$baseline" || true) "$(grep '^counts' <<<"$baseline")"

status=0
# mutation name file fixed-text defect-text cases…: applies the defect to a worktree of HEAD and checks that
# the cases (ids) are among the failures the baseline does not have.
mutation() {
  local name=$1 file=$2 from=$3 to=$4 src out new missing
  shift 4
  [[ -z "$pick" || "$name" == *"$pick"* ]] || return 0
  src=$(mktemp -d /tmp/koppelpoort-mutation.XXXXXX)/src
  git -C "$ROOT" worktree add -q --detach "$src" HEAD
  if ! FROM=$from TO=$to perl -0pi -e 'BEGIN{$f=$ENV{FROM}; $t=$ENV{TO}} $n += s/\Q$f\E/$t/; END{exit($n ? 0 : 1)}' "$src/$file"; then
    echo "MUTATION $name: the fixed code is not in $file any more; update this script" >&2
    status=1
  else
    if ! out=$(run_suite "$src"); then
      echo "MUTATION $name: the mutated code does not build; update this script" >&2
      status=1
      out=""
    fi
    new=$(comm -13 <(grep -v '^counts' <<<"$baseline") <(grep -v '^counts' <<<"$out") | tr '\n' ' ')
    missing=""
    for id in "$@"; do
      [[ " $new" == *" $id["* || " $new" == *" $id "* ]] || missing+="$id "
    done
    if [ -n "$missing" ]; then
      echo "MUTATION $name: NOT CAUGHT — expected failures missing: $missing; new failures: ${new:-none} ($(grep '^counts' <<<"$out"))"
      status=1
    else
      echo "MUTATION $name: caught — new failures: $new($(grep '^counts' <<<"$out"))"
    fi
  fi
  git -C "$ROOT" worktree remove --force "$src"
  rm -rf "$(dirname "$src")"
}

mutation defect1-source-software koppeltaal/mailbox.go \
  'return dstu1.Source{Name: "Koppeltaal", Software: buildinfo.Product, Version: buildinfo.Version(), Endpoint: base + "/Mailbox"}' \
  '_ = buildinfo.Product; return dstu1.Source{Endpoint: base + "/Mailbox"}' \
  mailbox/reply-source-software
mutation defect2-stale-text-period koppeltaal/mailbox.go \
  'TextVersionNotCorrect     = "The specified resource version is not correct"' \
  'TextVersionNotCorrect     = "The specified resource version is not correct."' \
  mailbox/stale-version-text queue/ack-stale-version activity/update-stale
mutation defect3-smartplatforms-uris koppeltaal/conformance.go \
  'uri(ExtConformanceAuthorize, "Authorize"), uri(ExtConformanceToken, "Token"), ' '' \
  metadata/oauth-uris-smartplatforms metadata/test-game
mutation defect4-blackboxstate koppeltaal/mailbox.go \
  'dstu1.KindCareTeam: true, dstu1.KindBlackBoxState: true,' 'dstu1.KindCareTeam: true,' \
  mailbox/blackboxstate-other module/web-launch module/mobile-launch
mutation defect5-identifier-search koppeltaal/api/api.go \
  'Identifier: q.Get("identifier")' 'Identifier: ""' \
  search/identifier
mutation defect7-garbage-count koppeltaal/api/api.go \
  'if err != nil || n < 1 {
		return 0, fail(http.StatusBadRequest, "invalid", "The parameter _count' \
  'if err != nil || n < 1 {
		return 1, nil
	}
	if false {
		return 0, fail(http.StatusBadRequest, "invalid", "The parameter _count' \
  search/bad-count-or-page
mutation defect7-json-types fhir/dstu1/json_read.go \
  "if want := jsonKindOf(k); v.kind != want && !(want == 't' && v.kind == 'f') {" \
  "if want := jsonKindOf(k); false && v.kind != want {" \
  hostile/identifier-number hostile/data-reference-number
mutation defect7-primitive-values fhir/dstu1/values.go \
  'func checkValue(p primitive, v string) error {' \
  'func checkValue(p primitive, v string) error {
	if true {
		return nil
	}' \
  hostile/timestamp-yesterday hostile/xml-invalid-datetime hostile/xml-invalid-instant hostile/xml-invalid-uri
mutation patient-extension-mismatch koppeltaal/mailbox.go \
  'case named == "" || named == ext:' 'case named == "" || named == ext || true:' \
  hostile/patient-extension-mismatch
exit $status
