#!/usr/bin/env bash
# Kairn on S3 (s3s-fs on 127.0.0.1, files under a temp dir): a first backup, then the commands
# the local cache is for, cold (--no-cache) and warm, each the median of 3 runs.
#   bash benches/e2e/object-storage.sh [DATASET_DIR]   (default: the harness's src dataset)
# Loopback has no latency: the figures show CPU and request counts, not a WAN's round trips.
# Needs a release build (cargo build --release -p repo-cli) and scripts/test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-/var/tmp/kairn-bench/data/src}
REPO_BIN=target/release/repo
S3S=${KAIRN_S3S_FS:-${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs}
WORK=$(mktemp -d /var/tmp/kairn-s3bench.XXXXXX)
SERVER=
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/s3/bench" "$WORK/cache"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$S3S" --host 127.0.0.1 --port "$PORT" --access-key AK --secret-key SKSKSKSK "$WORK/s3" >/dev/null 2>&1 &
SERVER=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
echo pw > "$WORK/pw"
repo() {
  "$REPO_BIN" -r s3://bench/repo --password-file "$WORK/pw" -o "endpoint=http://127.0.0.1:$PORT" \
    -o access-key-id=AK -o secret-access-key=SKSKSKSK -o ambient-credentials=false \
    --cache-dir "$WORK/cache" -q "$@"
}
median3() { # label, command...
  local label=$1; shift
  local t=()
  for _ in 1 2 3; do
    local s; s=$(date +%s.%N); "$@" >/dev/null; t+=("$(echo "$(date +%s.%N) - $s" | bc)")
  done
  printf '%-40s %6.2f s   (runs: %s)\n' "$label" "$(printf '%s\n' "${t[@]}" | sort -n | sed -n 2p)" "${t[*]}"
}
repo init >/dev/null
s=$(date +%s.%N); repo backup "$DATA" >/dev/null
printf '%-40s %6.2f s\n' "first backup ($(du -sh "$DATA" | cut -f1))" "$(echo "$(date +%s.%N) - $s" | bc)"
for i in 1 2 3; do repo backup "$DATA" --tag "r$i" >/dev/null; done
median3 "snapshots, no cache" repo --no-cache snapshots
median3 "snapshots, warm cache" repo snapshots
median3 "ls -l latest, no cache" repo --no-cache ls latest
median3 "ls -l latest, warm cache" repo ls latest
median3 "backup, nothing changed, no cache" repo --no-cache backup "$DATA"
median3 "backup, nothing changed, warm cache" repo backup "$DATA"
echo "cache holds $(du -sh "$WORK/cache" | cut -f1); repository $(du -sh "$WORK/s3" | cut -f1)"
