#!/usr/bin/env bash
# The main job on the embedded default, a repository in a local directory: back up this
# project's sources, back them up again, list the snapshots, restore the latest elsewhere,
# compare, and show what deduplication and compression saved.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p repo-cli
repo=target/release/repo

work=$(mktemp -d "${TMPDIR:-/tmp}/kairn-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
export KAIRN_REPOSITORY="$work/repo"
export KAIRN_PASSWORD="demo password, use a real one"
src=$(pwd)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "repo init"
$repo init

step "repo backup (first: everything is new)"
$repo backup "$src/engine" "$src/repo-cli" "$src/tests" --exclude target --tag demo

step "repo backup (second: unchanged files are skipped without being read)"
$repo backup "$src/engine" "$src/repo-cli" "$src/tests" --exclude target --tag demo

step "repo snapshots"
$repo snapshots

step "repo ls latest:$src/engine/src/format"
$repo ls --long "latest:$src/engine/src/format"

step "repo restore latest --target $work/restored --verify"
$repo restore latest --target "$work/restored" --verify

step "diff -r against the sources"
for d in engine repo-cli tests; do
  diff -r --exclude target "$src/$d" "$work/restored$src/$d"
done
echo "identical"

step "repo stats (what deduplication and compression saved)"
$repo stats
