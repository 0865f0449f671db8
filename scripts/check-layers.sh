#!/usr/bin/env bash
# The bottom layer (bytes to types) must not reach storage, the repository, operations or the
# filesystem; the engine must never print. Rust has no import fences inside one crate, so grep.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
bottom=(engine/src/format engine/src/crypto.rs engine/src/chunker.rs engine/src/compress.rs engine/src/id.rs engine/src/units.rs)
if grep -rnE 'crate::(backend|repo|index|packer|blobs|backup|restore|ops|snapshots|locate)\b|std::fs\b' "${bottom[@]}"; then
  echo "layer violation: format/crypto/chunker/compress/id must stay free of I/O and upper layers" >&2
  status=1
fi
if grep -rnE 'crate::(backup|restore|ops|snapshots|repo|index|packer)\b' engine/src/backend; then
  echo "layer violation: backend must not use the repository or operations" >&2
  status=1
fi
if grep -rnE '^[^/]*\b(println|eprintln|print|eprint)!' engine/src; then
  echo "the engine never prints: report through progress::Progress" >&2
  status=1
fi
exit $status
