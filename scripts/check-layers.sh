#!/usr/bin/env bash
# Cargo keeps the direction of the engine's layers (each is a crate under engine/). What Cargo
# cannot see is checked here:
# - the format crate (bytes to types) does no I/O;
# - the engine never prints (it reports through ops::progress::Progress);
# - no two files of a crate import each other in a circle (scripts/check-cycles.py), except
#   the cycles still listed in scripts/known-cycles.txt, which may only shrink.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
if grep -rnE '^[^/]*(\bstd::(fs|net|process)\b|\bopendal::)' engine/format/src; then
  echo "layer violation: engine/format must stay free of I/O" >&2
  status=1
fi
if grep -rnE '^[^/]*\b(println|eprintln|print|eprint)!' engine/*/src report/src; then
  echo "the engine and the report library never print: report through progress::Progress" >&2
  status=1
fi
crates=(engine/*/src engine/src report/src node-agent/src repo-cli/src benches/src tests/src)
found=$(python3 scripts/check-cycles.py "${crates[@]}" 2>&1 || true)
known=$(grep -v '^#' scripts/known-cycles.txt || true)
new=$(comm -23 <(sort <<<"$found" | sed '/^$/d') <(sort <<<"$known" | sed '/^$/d'))
gone=$(comm -13 <(sort <<<"$found" | sed '/^$/d') <(sort <<<"$known" | sed '/^$/d'))
if [[ -n $new ]]; then
  printf 'new import cycles:\n%s\n' "$new" >&2
  status=1
fi
if [[ -n $gone ]]; then
  printf 'these cycles are gone: delete them from scripts/known-cycles.txt\n%s\n' "$gone" >&2
  status=1
fi
exit $status
