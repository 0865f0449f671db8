#!/usr/bin/env bash
# The whole test suite: install the S3 servers the tests start (once), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --workspace --locked "$@"
