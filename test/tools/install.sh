#!/usr/bin/env bash
# Installs and builds the real peers that Berth's tests run against (DESIGN.md §5).
#
# Idempotent and fast when warm: apt packages are checked with dpkg-query and
# `apt-get update` runs only when one is missing; each Go tool is rebuilt only
# when its pinned version (recorded in a marker file beside the binary) changes.
#
# Everything built lands in ${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools}/bin,
# outside the repository; GOPATH and GOCACHE live beside it. test/tools/tools.ts
# resolves binaries from the same places.
set -euo pipefail

TOOLS_DIR="${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools}"
BIN_DIR="$TOOLS_DIR/bin"

# Debian packages. prometheus also brings promtool.
APT_PACKAGES=(docker.io skopeo docker-registry nginx-light busybox-static prometheus wrk curl)

# Go tools: name, package, pinned version. The conformance suite has no tags;
# its pin is the newest pseudo-version of the spec's main branch that the Go
# module proxy serves (it has the referrers and sha512 tests).
CONFORMANCE_PKG=github.com/opencontainers/distribution-spec/conformance
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
CRANE_PKG=github.com/google/go-containerregistry/cmd/crane
CRANE_VERSION=v0.22.1
ORAS_PKG=oras.land/oras/cmd/oras
ORAS_VERSION=v1.3.6
# MinIO's release tags (RELEASE.2025-…Z) are not semver, so the Go module proxy
# serves only pseudo-versions of it, and of those only its newest: the head of
# master, which is RELEASE.2025-10-15T17-29-55Z plus a few fixes (conditional
# PUT quorum, one response per request) and the notice that the repository is no
# longer maintained. The ldflags give it the identity its Makefile would.
MINIO_PKG=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_COMMIT=7aac2a2c5b7c882e68c1ce017d8256be2feea27f
MINIO_TIME=2026-02-12T20:18:48Z
# CNCF Distribution 3, the reference registry on S3 (Debian ships only 2.8).
DISTRIBUTION_V3_PKG=github.com/distribution/distribution/v3/cmd/registry
DISTRIBUTION_V3_VERSION=v3.1.2

# Bump when the build recipe below changes, to force a rebuild of every tool.
RECIPE=1

log() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

mkdir -p "$BIN_DIR"

# One install at a time per tools dir (npm test and npm run bench may overlap).
exec 9>"$TOOLS_DIR/install.lock"
flock 9

install_apt_packages() {
  local missing=() pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt packages present (${APT_PACKAGES[*]})"
    return
  fi
  log "installing apt packages: ${missing[*]}"
  # Package scripts must not start system services (a system dockerd, nginx on
  # :80, prometheus on :9090): tests start their own private instances.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    added_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # NEEDRESTART_SUSPEND: needrestart (if present) has nothing to restart here and only adds noise.
  as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$added_policy" -eq 1 ]; then as_root rm -f "$policy"; fi
  log "apt packages installed"
}

setup_go_env() {
  command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.26 is needed to build the test tools)"
  export GOPATH="$TOOLS_DIR/go"
  export GOCACHE="$TOOLS_DIR/go-build"
  export GOFLAGS=-trimpath
  export GOTOOLCHAIN=local
  export CGO_ENABLED=0
}

# build_go_tool NAME PACKAGE VERSION [LDFLAGS]: `go install PACKAGE@VERSION`
# into a staging dir, then move the binary to $BIN_DIR/NAME.
build_go_tool() {
  local name="$1" pkg="$2" version="$3" ldflags="${4:-}"
  local marker="$BIN_DIR/.$name.version"
  local want="$pkg@$version recipe=$RECIPE"
  if [ -x "$BIN_DIR/$name" ] && [ "$(cat "$marker" 2>/dev/null || true)" = "$want" ]; then
    log "$name $version present"
    return
  fi
  [ -n "${GOPATH:-}" ] || setup_go_env
  log "building $name $version (this can take a few minutes)"
  local stage="$TOOLS_DIR/stage/$name"
  rm -rf "$stage"
  mkdir -p "$stage"
  local start=$SECONDS
  GOBIN="$stage" go install -ldflags="-s -w $ldflags" "$pkg@$version"
  local built="$stage/${pkg##*/}"
  [ -x "$built" ] || die "go install $pkg@$version produced no $built"
  mv -f "$built" "$BIN_DIR/$name"
  printf '%s\n' "$want" >"$marker"
  rm -rf "$stage"
  rmdir "$TOOLS_DIR/stage" 2>/dev/null || true
  log "built $name $version in $((SECONDS - start))s"
}

install_apt_packages
# The suite's `go test` entry point is deprecated upstream; its README builds
# the main package, which is what this does. Version names the commit in the
# suite's reports (there is no VCS info in a module build).
build_go_tool oci-conformance "$CONFORMANCE_PKG" "$CONFORMANCE_VERSION" "-X main.Version=${CONFORMANCE_VERSION##*-}"
build_go_tool crane "$CRANE_PKG" "$CRANE_VERSION"
build_go_tool oras "$ORAS_PKG" "$ORAS_VERSION"
# The two big builds (minutes each when cold) run one after the other, never together.
minio_x=github.com/minio/minio/cmd
build_go_tool minio "$MINIO_PKG" "$MINIO_VERSION" "-X $minio_x.Version=$MINIO_TIME \
-X $minio_x.ReleaseTag=DEVELOPMENT.${MINIO_TIME//:/-} -X $minio_x.CommitID=$MINIO_COMMIT \
-X $minio_x.ShortCommitID=${MINIO_COMMIT:0:12} -X $minio_x.CopyrightYear=${MINIO_TIME:0:4}"
build_go_tool distribution-v3 "$DISTRIBUTION_V3_PKG" "$DISTRIBUTION_V3_VERSION" \
  "-X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_V3_VERSION"
log "tools ready in $BIN_DIR"
