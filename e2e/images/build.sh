#!/usr/bin/env bash
# Build Corral's container images without a Docker engine or a registry, and
# import them into the local cluster's containerd.
#
#   build.sh [all]                    sandbox-base, pause, and a component image
#                                     for every Corral binary found in target/
#   build.sh sandbox-base             corral/sandbox-base:dev (Debian bookworm:
#                                     bash coreutils git python3 python3-pip curl
#                                     ca-certificates)
#   build.sh pause                    registry.k8s.io/pause:3.10 (static C pause)
#   build.sh component NAME BINARY    corral/NAME:dev = minimal Debian 12 + BINARY at
#                                     /usr/local/bin/NAME (entrypoint), uid 65532
#   build.sh redis                    corral/redis:dev = Debian 12 + redis-server (the
#                                     session log's Redis for the local cluster)
#   build.sh seaweedfs                corral/seaweedfs:dev = Debian 12 + SeaweedFS's weed built
#                                     from Go modules (the Files API's object store)
#   build.sh git-server               corral/git-server:dev = Debian 12 + git + lighttpd serving
#                                     git http-backend behind basic auth (the e2e tests' git remote)
#   build.sh import ARCHIVE...        import image archives into the cluster
#   build.sh cluster-base             pause + sandbox-base, reusing the cached
#                                     sandbox-base archive (run by up.sh)
#
# Root filesystems are made with debootstrap and cached in
# $CORRAL_CACHE/rootfs; images are assembled with buildah (vfs storage in
# $CORRAL_CACHE/buildah) and written as docker-archive tarballs to
# $CORRAL_CACHE/images/*.tar. When the cluster is up (make cluster-up) every
# image built is imported with `ctr -n k8s.io images import`; set
# CORRAL_NO_IMPORT=1 to only build.
#
# CORRAL_COMPONENTS overrides which binaries `all` looks for: space-separated
# NAME or NAME=BINARY-FILE-NAME entries (default below), searched in
# ${CARGO_TARGET_DIR:-target}/release then /debug.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"

IMAGES_DIR="$E2E_DIR/images"
ROOTFS_DIR="$CACHE_DIR/rootfs"
ARCHIVE_DIR="$CACHE_DIR/images"
MIRROR="${CORRAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
BASE_PACKAGES=(ca-certificates git)
SANDBOX_PACKAGES=(bash coreutils git python3 python3-pip curl ca-certificates)
DEFAULT_COMPONENTS="operator harness gateway sandbox-daemon sandbox"
PAUSE_IMAGE=registry.k8s.io/pause:3.10

B=(buildah --root "$CACHE_DIR/buildah/root" --runroot "$CACHE_DIR/buildah/run" --storage-driver vfs)

ensure_tools() {
  local missing=() t
  for t in buildah debootstrap gcc; do command -v "$t" >/dev/null || missing+=("$t"); done
  ((${#missing[@]} == 0)) || "$E2E_CLUSTER_DIR/deps.sh"
}

# rootfs NAME PACKAGES...: a cached tarball of a debootstrap (minbase) tree.
rootfs() {
  local name=$1 key tar tmp
  shift
  key=$(printf '%s\n' "$SUITE" "$@" | sha256sum | cut -c1-12)
  tar="$ROOTFS_DIR/$SUITE-$name-$key.tar"
  if [[ -f $tar ]]; then
    printf '%s\n' "$tar"
    return 0
  fi
  mkdir -p "$ROOTFS_DIR/debs"
  tmp=$(mktemp -d "$ROOTFS_DIR/.build-XXXXXX")
  log "debootstrap $SUITE ($name: minbase + $*) -- about 2 minutes, once"
  # In a private mount namespace: whatever debootstrap mounts in the target
  # (proc, sys) disappears with it, and libmount's utab stays out of /run.
  if ! LIBMOUNT_UTAB="$tmp/utab" unshare --mount --propagation private -- \
    debootstrap --variant=minbase --include="$(IFS=,; echo "$*")" --cache-dir="$ROOTFS_DIR/debs" \
    "$SUITE" "$tmp/root" "$MIRROR" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 20 "$tmp/debootstrap.log" >&2
    rm -rf --one-file-system "$tmp"
    die "debootstrap failed"
  fi
  # Slim it down: no package caches, no apt lists, no docs, no device nodes.
  rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"* \
    "$tmp/root/usr/share/doc/"* "$tmp/root/usr/share/man/"* "$tmp/root/usr/share/info/"* \
    "$tmp/root/var/log/"*.log "$tmp/root/dev/"*
  printf 'nameserver 127.0.0.1\n' >"$tmp/root/etc/resolv.conf"
  tar --numeric-owner -C "$tmp/root" -cf "$tar.partial" .
  mv "$tar.partial" "$tar"
  rm -rf --one-file-system "$tmp"
  printf '%s\n' "$tar"
}

image_exists() { "${B[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# image_from_rootfs IMAGE TARBALL CONFIG-ARGS...
image_from_rootfs() {
  local image=$1 tar=$2 ctr mnt
  shift 2
  ctr=$("${B[@]}" from scratch)
  mnt=$("${B[@]}" mount "$ctr")
  tar --numeric-owner -C "$mnt" -xf "$tar"
  # A named non-root user 65532 ("nonroot"): with only a uid in the image's
  # USER, the runtime takes the group from /etc/passwd (else gid 0).
  grep -q '^nonroot:' "$mnt/etc/passwd" ||
    echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$mnt/etc/passwd"
  grep -q '^nonroot:' "$mnt/etc/group" || echo 'nonroot:x:65532:' >>"$mnt/etc/group"
  install -d -o 65532 -g 65532 -m 0755 "$mnt/home/nonroot"
  "${B[@]}" umount "$ctr" >/dev/null
  "${B[@]}" config --os linux --arch amd64 "$@" "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$(qualified "$image")" >/dev/null
}

# The name containerd and kubelet use: "corral/x:dev" is docker.io/corral/x:dev.
qualified() {
  case "${1%%/*}" in
    *.* | *:* | localhost) printf '%s\n' "$1" ;;
    *) printf 'docker.io/%s\n' "$1" ;;
  esac
}

# archive IMAGE NAME: write $ARCHIVE_DIR/NAME.tar and import it.
archive() {
  local image=$1 out="$ARCHIVE_DIR/$2.tar"
  mkdir -p "$ARCHIVE_DIR"
  rm -f "$out"
  image=$(qualified "$image")
  "${B[@]}" push --quiet "$image" "docker-archive:$out:$image" >/dev/null
  "${B[@]}" rmi --prune >/dev/null 2>&1 || true # images replaced by this build
  log "built $image -> $out ($(du -h "$out" | cut -f1))"
  import_archives "$out"
}

import_archives() {
  local sock="$STATE_DIR/containerd/containerd.sock" a
  if [[ -n ${CORRAL_NO_IMPORT:-} ]]; then return 0; fi
  if [[ ! -S $sock ]]; then
    log "cluster not running: not importing (make cluster-up, then: $0 import $*)"
    return 0
  fi
  for a in "$@"; do
    ctr --address "$sock" -n k8s.io images import "$a" >/dev/null
    log "imported $(basename "$a") into the cluster"
  done
}

# in_cluster REF: the cluster's containerd has image REF.
in_cluster() {
  local sock="$STATE_DIR/containerd/containerd.sock"
  [[ -S $sock ]] && [[ -n $(ctr --address "$sock" -n k8s.io images ls -q "name==$1" 2>/dev/null) ]]
}

build_sandbox_base() {
  local tar
  tar=$(rootfs sandbox "${SANDBOX_PACKAGES[@]}")
  image_from_rootfs corral/sandbox-base:dev "$tar" \
    --cmd /bin/bash --workingdir / --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.title=corral-sandbox-base
  archive corral/sandbox-base:dev sandbox-base
  sandbox_key >"$ARCHIVE_DIR/sandbox-base.key"
}

# sandbox_key: what the sandbox-base archive was built from (a changed package list rebuilds it).
sandbox_key() { printf '%s\n' "$SUITE" "${SANDBOX_PACKAGES[@]}" | sha256sum | cut -c1-12; }

# The base of every component image: Debian 12 minbase (glibc for our
# dynamically linked binaries) + CA certificates, kept in buildah's storage so
# all component images share one base layer.
ensure_component_base() {
  local tar
  tar=$(rootfs base "${BASE_PACKAGES[@]}")
  local id key
  key=$(basename "$tar" .tar)
  id="docker.io/corral/base:${key##*-}-1"
  if ! image_exists "$id"; then
    image_from_rootfs "$id" "$tar" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  fi
  printf '%s\n' "$id"
}

build_component() {
  local name=$1 bin=$2 base ctr tmp
  [[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "bad image name: $name"
  [[ -f $bin && -x $bin ]] || die "not an executable file: $bin"
  base=$(ensure_component_base)
  tmp=$(mktemp -d)
  cp "$bin" "$tmp/$name"
  # Debug builds carry hundreds of MB of DWARF: drop it (symbols stay, so
  # backtraces still name functions). CORRAL_IMAGE_STRIP=0 keeps it.
  if [[ ${CORRAL_IMAGE_STRIP:-1} != 0 ]]; then strip --strip-debug "$tmp/$name" 2>/dev/null || true; fi
  ctr=$("${B[@]}" from --pull-never "$base")
  "${B[@]}" copy --chown 0:0 --chmod 0755 "$ctr" "$tmp/$name" "/usr/local/bin/$name" >/dev/null
  rm -rf "$tmp"
  "${B[@]}" config --entrypoint "[\"/usr/local/bin/$name\"]" --cmd '' --user 65532:65532 \
    --workingdir / --label "org.opencontainers.image.title=corral-$name" "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$(qualified "corral/$name:dev")" >/dev/null
  archive "corral/$name:dev" "$name"
}

# The session log's Redis for clusters without a registry: Debian's redis-server
# (the chart's default for real clusters is the upstream redis image).
build_redis() {
  local tar
  tar=$(rootfs redis redis-server)
  image_from_rootfs corral/redis:dev "$tar" \
    --cmd '["redis-server"]' --user 999:999 --workingdir /data \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.title=corral-redis
  archive corral/redis:dev redis
}

# The Files API's object store for clusters without a registry: SeaweedFS's weed, built from Go modules
# (e2e/cluster/s3-binary.sh), on the component base (the chart's default for real clusters is the upstream image).
build_seaweedfs() {
  local weed base ctr
  weed=$("$E2E_CLUSTER_DIR/s3-binary.sh")
  base=$(ensure_component_base)
  ctr=$("${B[@]}" from --pull-never "$base")
  "${B[@]}" copy --chown 0:0 --chmod 0755 "$ctr" "$weed" /usr/local/bin/weed >/dev/null
  "${B[@]}" config --entrypoint '["/usr/local/bin/weed"]' --cmd '' --user 65532:65532 --workingdir /data \
    --label org.opencontainers.image.title=corral-seaweedfs "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$(qualified corral/seaweedfs:dev)" >/dev/null
  archive corral/seaweedfs:dev seaweedfs
}

# The e2e tests' git smart-HTTP server (e2e/images/git-server.sh): a real web server requiring a token in front of
# Debian's git http-backend, so repository resources are cloned and pushed to over real HTTP.
build_git_server() {
  local tar ctr
  tar=$(rootfs git-server git lighttpd)
  image_from_rootfs corral/git-server:dev "$tar" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  ctr=$("${B[@]}" from --pull-never "$(qualified corral/git-server:dev)")
  "${B[@]}" copy --chown 0:0 --chmod 0755 "$ctr" "$IMAGES_DIR/git-server.sh" /usr/local/bin/git-server >/dev/null
  "${B[@]}" config --entrypoint '["/usr/local/bin/git-server"]' --cmd '' --user 65532:65532 --workingdir /tmp \
    --label org.opencontainers.image.title=corral-git-server "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$(qualified corral/git-server:dev)" >/dev/null
  archive corral/git-server:dev git-server
}

build_pause() {
  local tmp ctr
  tmp=$(mktemp -d)
  gcc -static -Os -s -o "$tmp/pause" "$IMAGES_DIR/pause.c"
  ctr=$("${B[@]}" from scratch)
  "${B[@]}" copy --chmod 0755 "$ctr" "$tmp/pause" /pause >/dev/null
  "${B[@]}" config --os linux --arch amd64 --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$(qualified "$PAUSE_IMAGE")" >/dev/null
  rm -rf "$tmp"
  archive "$PAUSE_IMAGE" pause
}

build_all() {
  local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}" entry name file dir found=0
  build_pause
  build_sandbox_base
  for entry in ${CORRAL_COMPONENTS:-$DEFAULT_COMPONENTS}; do
    name=${entry%%=*}
    for file in ${entry#*=} "corral-$name" "$name"; do
      for dir in release debug; do
        if [[ -f $target/$dir/$file && -x $target/$dir/$file ]]; then
          build_component "$name" "$target/$dir/$file"
          found=$((found + 1))
          continue 3
        fi
      done
    done
  done
  log "component images built: $found (from $target)"
}

require_root
ensure_tools
case "${1:-all}" in
  all) build_all ;;
  sandbox-base) build_sandbox_base ;;
  pause) build_pause ;;
  redis) build_redis ;;
  seaweedfs) build_seaweedfs ;;
  git-server) build_git_server ;;
  component)
    (($# == 3)) || die "usage: $0 component NAME BINARY"
    build_component "$2" "$3"
    ;;
  cluster-base)
    # Skips what the cluster's containerd already has (idempotent up.sh).
    in_cluster registry.k8s.io/pause:3.10 || build_pause
    if in_cluster docker.io/corral/sandbox-base:dev; then
      :
    elif [[ -f $ARCHIVE_DIR/sandbox-base.tar && $(cat "$ARCHIVE_DIR/sandbox-base.key" 2>/dev/null) == "$(sandbox_key)" ]]; then
      import_archives "$ARCHIVE_DIR/sandbox-base.tar"
    else
      build_sandbox_base
    fi
    ;;
  import)
    shift
    import_archives "$@"
    ;;
  *) die "unknown command: $1 (see the header of $0)" ;;
esac
