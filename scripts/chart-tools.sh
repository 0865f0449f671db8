#!/usr/bin/env bash
# The tools the Helm chart's tests use (tests/tests/chart.rs). `chart-tools.sh build` prints, on
# stdout, a directory holding `helm` and `kubeconform`, built from the Go module proxy the first
# time (a few minutes) into a cache outside the work tree,
# ${KAIRN_CACHE:-~/.cache/kairn}/chart-tools/<versions>/bin, and found there in a moment after
# that. Same pattern as scripts/control-plane.sh.
set -euo pipefail

HELM_VERSION=${KAIRN_HELM_VERSION:-v3.22.0}
KUBECONFORM_VERSION=${KAIRN_KUBECONFORM_VERSION:-v0.8.0}
CACHE=${KAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kairn}/chart-tools/helm-$HELM_VERSION-kubeconform-$KUBECONFORM_VERSION
BIN=$CACHE/bin

log() { echo "chart-tools: $*" >&2; }

build() {
  local started=$SECONDS client_go minor ldflags
  command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || PATH=/usr/local/go/bin:$PATH
  command -v go >/dev/null || {
    log "go is not on PATH: install Go >= 1.26 (helm $HELM_VERSION needs it)"
    exit 1
  }
  log "building helm $HELM_VERSION and kubeconform $KUBECONFORM_VERSION from the Go module proxy into $CACHE (first time: minutes)"
  # No toolchain download: fail plainly if a release needs a newer Go than the installed one.
  export GOTOOLCHAIN=local
  # A build cache of its own, removed once the binaries exist (no later run uses it).
  export GOCACHE=$CACHE/go-build
  # What helm's Makefile stamps. Without the Kubernetes version, `helm template` and `helm lint`
  # take the cluster for a v1.20 one (the chart asks for >= 1.30); it is one minor above the
  # client-go that helm is built with, as the Makefile computes it.
  client_go=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])' |
    xargs sed -n 's#^[[:space:]]*k8s\.io/client-go v0\.\([0-9]*\)\..*#\1#p')
  [ -n "$client_go" ] || {
    log "found no k8s.io/client-go in helm $HELM_VERSION's go.mod"
    exit 1
  }
  minor=$client_go
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  # Into a temporary directory, so that an interrupted build never leaves a binary that looks done.
  rm -rf "$CACHE/tmp" && mkdir -p "$CACHE/tmp" "$BIN"
  GOBIN=$CACHE/tmp go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  GOBIN=$CACHE/tmp go install -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2
  mv "$CACHE/tmp/helm" "$CACHE/tmp/kubeconform" "$BIN/"
  rm -rf "$GOCACHE" "$CACHE/tmp"
  log "built in $((SECONDS - started))s"
}

case ${1:-} in
build)
  mkdir -p "$CACHE"
  # Test binaries may ask at the same time: one builds, the others wait for it.
  exec 9>"$CACHE/.lock"
  flock 9
  [ -x "$BIN/helm" ] && [ -x "$BIN/kubeconform" ] || (build)
  echo "$BIN"
  ;;
*)
  echo "usage: $0 build    (prints the directory holding helm and kubeconform)" >&2
  exit 2
  ;;
esac
