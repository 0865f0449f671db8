#!/usr/bin/env bash
# A real Kubernetes control plane for the tests (the envtest approach: etcd + kube-apiserver,
# no kubelet). `control-plane.sh build` prints, on stdout, a directory holding `kube-apiserver`,
# `kubectl` and `etcd`:
#   - $KUBEBUILDER_ASSETS when it is set (envtest's convention): nothing is built;
#   - otherwise a cache outside the work tree, ${KAIRN_CACHE:-~/.cache/kairn}/control-plane/<release>/bin,
#     where kube-apiserver and kubectl of one pinned release are built from the Go module proxy the
#     first time (minutes), and found in about a second after that.
# etcd is Debian's (scripts/test-deps.sh installs it), linked into the cache so that the directory
# has the same shape as a KUBEBUILDER_ASSETS one.
set -euo pipefail

# One pinned release. 1.34 is the oldest served by the proxy here; its kube-apiserver accepts
# Debian's etcd 3.4 and it builds with the installed Go without a toolchain download.
K8S_VERSION=${KAIRN_K8S_VERSION:-v1.34.4}
STAGING_VERSION=v0.${K8S_VERSION#v1.}
CACHE=${KAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kairn}/control-plane/$K8S_VERSION
BINARIES=(kube-apiserver kubectl etcd)

log() { echo "control-plane: $*" >&2; }

has_all() {
  local dir=$1 bin
  for bin in "${BINARIES[@]}"; do
    [ -x "$dir/$bin" ] || return 1
  done
}

link_etcd() {
  local etcd
  etcd=$(command -v etcd) || {
    log "etcd is not on PATH: run scripts/test-deps.sh (it installs Debian's etcd-server)"
    exit 1
  }
  ln -sfn "$etcd" "$CACHE/bin/etcd"
}

# The staging modules (k8s.io/api, k8s.io/apiserver, ...) are `replace`d by
# ./staging/src/k8s.io/<m> in k8s.io/kubernetes's own go.mod and required at v0.0.0; a module
# that depends on k8s.io/kubernetes must point each of them at the published v0.X.Y instead.
staging_modules() {
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod"
}

build() {
  local src=$CACHE/src started=$SECONDS module replaces=()
  # The official tarball's place, which only an interactive shell's profile puts on PATH.
  command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || PATH=/usr/local/go/bin:$PATH
  command -v go >/dev/null || {
    log "go is not on PATH: install Go >= 1.24, or set KUBEBUILDER_ASSETS to envtest binaries"
    exit 1
  }
  log "building kube-apiserver and kubectl $K8S_VERSION from the Go module proxy into $CACHE (first time: minutes)"
  rm -rf "$src" && mkdir -p "$src" "$CACHE/bin"
  cd "$src"
  # A toolchain download is not possible here: fail plainly if the release needs a newer Go.
  export GOTOOLCHAIN=local GOFLAGS=-mod=mod
  # A build cache of its own, removed once the binaries exist: about 2.4 GB that no later run
  # uses (another release recompiles nearly every package anyway).
  export GOCACHE=$CACHE/go-build
  go mod init kairn.local/control-plane >/dev/null 2>&1
  for module in $(staging_modules); do
    replaces+=("-replace=$module=$module@$STAGING_VERSION")
  done
  [ ${#replaces[@]} -gt 0 ] || {
    log "found no staging modules in k8s.io/kubernetes@$K8S_VERSION's go.mod"
    exit 1
  }
  go mod edit "${replaces[@]}"
  # Quiet unless it fails: it lists each of some 200 modules it adds.
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" \
    >"$src/go-get.log" 2>&1 || {
    cat "$src/go-get.log" >&2
    exit 1
  }
  # What release/hack/lib/version.sh stamps: without it both report v0.0.0-master, and
  # kubectl warns about a version skew.
  local minor=${K8S_VERSION#v1.} ldflags="" var
  minor=${minor%%.*}
  for var in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $var.gitVersion=$K8S_VERSION -X $var.gitMajor=1 -X $var.gitMinor=$minor"
    ldflags+=" -X $var.gitTreeState=clean"
  done
  # Build into a temporary name so that an interrupted build never leaves a binary that looks done.
  go build -trimpath -ldflags "$ldflags" -o "$CACHE/bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
  go build -trimpath -ldflags "$ldflags" -o "$CACHE/bin/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl >&2
  mv "$CACHE/bin/kube-apiserver.tmp" "$CACHE/bin/kube-apiserver"
  mv "$CACHE/bin/kubectl.tmp" "$CACHE/bin/kubectl"
  rm -rf "$GOCACHE"
  log "built in $((SECONDS - started))s"
}

case ${1:-} in
build)
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    has_all "$KUBEBUILDER_ASSETS" || {
      log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS must hold executable ${BINARIES[*]}"
      exit 1
    }
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  mkdir -p "$CACHE/bin"
  # Test binaries may ask at the same time: one builds, the others wait for it.
  exec 9>"$CACHE/.lock"
  flock 9
  [ -x "$CACHE/bin/kube-apiserver" ] && [ -x "$CACHE/bin/kubectl" ] || (build)
  link_etcd
  has_all "$CACHE/bin"
  echo "$CACHE/bin"
  ;;
*)
  echo "usage: $0 build    (prints the directory holding ${BINARIES[*]})" >&2
  exit 2
  ;;
esac
