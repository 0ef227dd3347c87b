#!/usr/bin/env bash
# Builds the release archives for linux/amd64 and linux/arm64 into dist/ with a SHA256SUMS file:
#
#   deploy/release.sh                 # version from git describe
#   VERSION=v0.4.0 deploy/release.sh
#
# Reproducible: the binaries come from deploy/build.sh; the archives have fixed owners, sorted names and
# every file's time set to SOURCE_DATE_EPOCH (default: the commit's time), and gzip writes no name or time.
# Two runs on the same commit give the same SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/.."
# The archives hold files from the working tree: a release comes from a clean checkout of its commit.
if [ -n "$(git status --porcelain --untracked-files=no)" ] && [ -z "${ALLOW_DIRTY:-}" ]; then
  echo "release.sh: the checkout has uncommitted changes; commit them (or ALLOW_DIRTY=1 for a trial build)" >&2
  exit 1
fi
export VERSION=${VERSION:-$(git describe --tags --always 2>/dev/null || echo dev)}
export COMMIT=${COMMIT:-$(git rev-parse HEAD)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
dist=${DIST:-dist}
rm -rf "$dist" && mkdir -p "$dist"
for arch in amd64 arm64; do
  name=koppelpoort_${VERSION}_linux_${arch}
  stage=$(mktemp -d)
  mkdir -p "$stage/$name"
  deploy/build.sh "$stage/$name/koppelpoort" linux "$arch"
  cp LICENSE README.md deploy/koppelpoort.service "$stage/$name/"
  deploy/notices.sh > "$stage/$name/THIRD_PARTY_LICENSES"
  cp docs/koppelpoort.example.yaml "$stage/$name/koppelpoort.example.yaml"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      -C "$stage" -cf - "$name" | gzip -n -9 > "$dist/$name.tar.gz"
  rm -rf "$stage"
done
(cd "$dist" && sha256sum -- *.tar.gz > SHA256SUMS)
cat "$dist/SHA256SUMS"
