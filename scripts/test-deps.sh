#!/usr/bin/env bash
# Installs, idempotently, the real servers the object-storage tests start on 127.0.0.1:
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
