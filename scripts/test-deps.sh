#!/usr/bin/env bash
# Installs, idempotently, the real servers the tests start on 127.0.0.1: etcd (Debian),
# kube-apiserver and kubectl (built from source by scripts/control-plane.sh), and
# moto (S3 with Object Lock, from PyPI) in /opt/moto, and s3s-fs (from crates.io) in
# ~/.cargo/bin. Each step is skipped when its result is already there.
set -euo pipefail

MOTO=${KAIRN_MOTO:-/opt/moto}
if [ ! -x "$MOTO/bin/moto_server" ] || [ ! -x "$MOTO/bin/python" ]; then
  python3 -m venv "$MOTO"
  "$MOTO/bin/pip" install -q 'moto[s3]==5.2.5' flask flask-cors
fi

S3S_FS=${KAIRN_S3S_FS:-${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs}
if [ ! -x "$S3S_FS" ]; then
  # 0.14.1 is the last release that builds with rustc 1.95.
  cargo install -q s3s-fs --version 0.14.1 --features binary --locked
fi

# etcd 3.4 (Debian's etcd-server, and etcdctl from etcd-client) for the etcd snapshot tests,
# and openssl for their certificates. The package would start no service: there is no init here,
# and the tests start their own members on free loopback ports.
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null || ! command -v openssl >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends etcd-server etcd-client openssl
fi

# Headless Chromium (Debian's) renders the restore-readiness report in tests/tests/report.rs,
# which takes a screenshot and reads the DOM back; fonts-dejavu-core gives it text to draw.
if ! command -v chromium >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

# promtool (Debian's prometheus package; its server is not started: there is no init here) for
# the alert rules' tests and the metrics lint in tests/tests/alerts.rs.
if ! command -v promtool >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus
fi

# Debian's docker-registry (the CNCF distribution registry), skopeo to push the test images to
# it and read them back, and htpasswd (apache2-utils) for the registry's basic-auth file, for
# the container image tests in tests/tests/images.rs. The registries are started by the tests.
if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null || ! command -v htpasswd >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends docker-registry skopeo apache2-utils
fi

# fusermount3 (Debian's fuse3), which the fuser crate calls to mount `repo mount`'s filesystem
# on /dev/fuse, for tests/tests/mount.rs.
if ! command -v fusermount3 >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends fuse3
fi

# A real control plane (kube-apiserver and kubectl of one pinned release, beside the etcd above)
# for the tests that talk to a real API server: built from the Go module proxy the first time
# (minutes), then found in its cache outside the work tree in about a second. With
# KUBEBUILDER_ASSETS set (envtest's binaries), nothing is built.
bash "$(dirname "$0")/control-plane.sh" build >/dev/null

# helm and kubeconform for the chart's tests (tests/tests/chart.rs): built once from the Go
# module proxy into the same cache, then found there.
bash "$(dirname "$0")/chart-tools.sh" build >/dev/null
