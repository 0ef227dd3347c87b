#!/usr/bin/env bash
# Prints the licence texts of everything compiled into the koppelpoort binary besides our own code: every
# module `go list -deps` names for ./cmd/koppelpoort (its LICENSE, COPYING and NOTICE files, as the module
# ships them) and the Go standard library's. Most of these licences (BSD, MIT, Apache-2.0) require their text
# to travel with a binary, so deploy/release.sh puts this in every archive as THIRD_PARTY_LICENSES and the
# Dockerfile in the image. Sorted, so the same go.sum gives the same bytes.
#
#   deploy/notices.sh > THIRD_PARTY_LICENSES
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS= LC_ALL=C
echo "Third-party software in koppelpoort (deploy/notices.sh). Koppelpoort itself: see LICENSE."
go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}}@{{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/koppelpoort | sort -u |
  while read -r mod dir; do
    files=$(cd "$dir" && ls | grep -iE '^(licen[cs]e|copying|notice)([._-][a-z0-9._-]*)?$' | grep -v '\.go$' | sort || true)
    if [ -z "$files" ]; then
      echo "deploy/notices.sh: $mod ships no licence file" >&2
      exit 1
    fi
    for f in $files; do
      printf '\n==== %s: %s ====\n\n' "$mod" "$f"
      cat "$dir/$f"
    done
  done
printf '\n==== the Go standard library and runtime (%s): LICENSE ====\n\n' "$(go env GOVERSION)"
cat "$(go env GOROOT)/LICENSE"
