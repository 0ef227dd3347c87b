#!/usr/bin/env bash
# Builds one release binary of koppelpoort with the flags every release uses, so the same commit gives the
# same bytes on any machine (reproducible): no cgo, -trimpath (no local paths), no VCS stamping (the version
# and commit are passed explicitly instead, so a dirty checkout cannot change the output), no build id.
#
#   deploy/build.sh OUTPUT [GOOS GOARCH]        # default: the host's GOOS/GOARCH
#   VERSION=v0.4.0 COMMIT=<sha> deploy/build.sh dist/koppelpoort linux arm64
#
# VERSION defaults to `git describe --tags --always --dirty` (a build from a checkout with uncommitted
# changes says -dirty), COMMIT to `git rev-parse HEAD`. It clears GOFLAGS, so a machine's GOFLAGS
# (-buildvcs=false, -mod=...) cannot change the binary. The Dockerfile and deploy/release.sh both build
# through this script; `go build` and `go run` give a binary whose `version` says dev.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: deploy/build.sh OUTPUT [GOOS GOARCH]}
goos=${2:-$(go env GOOS)}
goarch=${3:-$(go env GOARCH)}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
pkg=github.com/koppelpoort/koppelpoort/internal/buildinfo
CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOFLAGS= go build \
  -trimpath -buildvcs=false \
  -ldflags "-s -w -buildid= -X $pkg.version=$VERSION -X $pkg.commit=$COMMIT" \
  -o "$out" ./cmd/koppelpoort
