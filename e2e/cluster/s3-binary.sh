#!/usr/bin/env bash
# Build SeaweedFS's `weed` (Apache-2.0), the S3-compatible object store of the Files API on the local cluster and in
# the gateway's integration tests, from Go modules into $CORRAL_CACHE/s3/<version>/weed, once per version. Prints
# the binary's path. The wrapper module in s3-build/ pins the version (an untagged pseudo-version: SeaweedFS tags
# no Go module releases) and carries the replace directive of SeaweedFS's own go.mod, which `go install @version`
# would refuse. Cold: several minutes on 2 cores (see docs/files.md for the figures).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MOD_DIR="$E2E_CLUSTER_DIR/s3-build"
version=$(sed -n 's/^[[:space:]]*\(require[[:space:]]\+\)\?github.com\/seaweedfs\/seaweedfs \(v[^[:space:]]*\).*/\2/p' "$MOD_DIR/go.mod" | head -n1)
[[ -n $version ]] || die "no seaweedfs version in $MOD_DIR/go.mod"
out="$CACHE_DIR/s3/$version/weed"
if [[ -x $out ]]; then
  printf '%s\n' "$out"
  exit 0
fi

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || die "go is required to build the S3 server (SeaweedFS)"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

mkdir -p "$(dirname "$out")"
log "building SeaweedFS $version (weed, the S3 server) from Go modules (once; several minutes cold)"
start=$SECONDS
(cd "$MOD_DIR" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" github.com/seaweedfs/seaweedfs/weed) >&2
mv "$out.tmp" "$out"
log "built $out in $((SECONDS - start)) s ($(du -h "$out" | cut -f1))"
printf '%s\n' "$out"
