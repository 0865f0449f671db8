#!/usr/bin/env bash
# Resumable runs, measured: a backup killed after KILL_AFTER seconds and run again, with the
# interrupted run's packs adopted (default expiry) or too old to adopt (expiry 6 s, 4 s later);
# and a restore run again over a complete one (every file already in place).
#   bash benches/e2e/resume.sh [DATASET_DIR] [KILL_AFTER_SECONDS] [REPS]
# Needs a release build (cargo build --release --bin repo); uses /var/tmp/kairn-resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-/var/tmp/kairn-bench/data/src}
kill_after=${2:-3}
reps=${3:-3}
repo_bin=$PWD/target/release/repo
work=/var/tmp/kairn-resume
rm -rf "$work" && mkdir -p "$work" && cd "$work"
echo pw >pw
r() { "$repo_bin" --password-file pw "$@"; }
now() { date +%s.%N; }
stored() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['new_bytes_stored'])" "$1"; }

r -r full init >/dev/null
s=$(now); r -r full --json backup "$data" >full.json; e=$(now)
printf 'uninterrupted backup: %.2f s, %s bytes stored\n' "$(echo "$e - $s" | bc)" "$(stored full.json)"
for rep in $(seq "$reps"); do
  for mode in adopted too-old; do
    rm -rf rr && r -r rr init >/dev/null
    # The binary itself in the background, not through a function: the kill must reach it.
    "$repo_bin" --password-file pw -r rr backup "$data" >/dev/null 2>&1 & pid=$!
    sleep "$kill_after"; kill -9 "$pid" 2>/dev/null || echo "(the backup finished before the kill)"
    wait "$pid" 2>/dev/null || true
    left=$(du -sb rr/data | cut -f1)
    extra=()
    if [[ $mode == too-old ]]; then sleep 4; extra=(--session-expiry 6); fi
    s=$(now); r -r rr "${extra[@]}" --json backup "$data" >rerun.json 2>/dev/null; e=$(now)
    printf 'backup re-run (%s), rep %s: %.2f s; %s bytes left by the killed run, %s stored again\n' \
      "$mode" "$rep" "$(echo "$e - $s" | bc)" "$left" "$(stored rerun.json)"
  done
done
for rep in $(seq "$reps"); do
  rm -rf out
  s=$(now); r -r full restore "latest:$data" --target out >/dev/null; e=$(now)
  s2=$(now); r -r full --json restore "latest:$data" --target out >again.json; e2=$(now)
  unchanged=$(python3 -c "import json; d=json.load(open('again.json')); print(f\"{d['unchanged']} of {d['files']}\")")
  printf 'restore, rep %s: fresh %.2f s; re-run over it %.2f s (%s files left in place)\n' \
    "$rep" "$(echo "$e - $s" | bc)" "$(echo "$e2 - $s2" | bc)" "$unchanged"
done
rm -rf "$work"
