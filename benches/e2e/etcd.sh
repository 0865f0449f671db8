#!/usr/bin/env bash
# etcd snapshots, measured: a real etcd (Debian etcd-server) loaded with KEYS keys of VALUE
# bytes through its gateway; `etcdctl snapshot save` for reference; `repo backup --etcd` into a
# fresh repository; then REPS rounds of rewriting 1% of the keys and backing up again (what a
# cluster does between two backups); then a compaction and a defragmentation (which rewrite the
# database file) and one more backup; then a restore.
#   bash benches/e2e/etcd.sh [KEYS] [VALUE_BYTES] [REPS]
# Needs a release build (cargo build --release --bin repo); uses /var/tmp/kairn-etcd.
set -euo pipefail
cd "$(dirname "$0")/../.."
keys=${1:-100000}
value=${2:-600}
reps=${3:-3}
repo_bin=$PWD/target/release/repo
work=/var/tmp/kairn-etcd
rm -rf "$work" && mkdir -p "$work" && cd "$work"
echo pw >pw
port=23791
peer=23801
ep=http://127.0.0.1:$port
etcd --name bench --data-dir data --listen-client-urls $ep --advertise-client-urls $ep \
  --listen-peer-urls http://127.0.0.1:$peer --initial-advertise-peer-urls http://127.0.0.1:$peer \
  --initial-cluster bench=http://127.0.0.1:$peer --quota-backend-bytes 8589934592 \
  --logger zap --log-outputs stderr --log-level error >etcd.log 2>&1 &
etcd_pid=$!
trap 'kill $etcd_pid 2>/dev/null || true' EXIT
until ETCDCTL_API=3 etcdctl --endpoints $ep endpoint health >/dev/null 2>&1; do sleep 0.2; done

# Puts keys [0, n) (or a random 1% of them with `churn SEED`) in transactions of 100.
load() {
  python3 - "$ep" "$keys" "$value" "$@" <<'PY'
import base64, json, os, random, sys, urllib.request
ep, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
picked = range(n)
if len(sys.argv) > 4:
    rnd = random.Random(int(sys.argv[5]))
    picked = rnd.sample(range(n), n // 100)
b64 = lambda b: base64.b64encode(b).decode()
batch = []
def flush():
    body = json.dumps({"success": [{"requestPut": {"key": b64(k), "value": b64(v)}} for k, v in batch]})
    urllib.request.urlopen(urllib.request.Request(ep + "/v3/kv/txn", body.encode(), {"Content-Type": "application/json"})).read()
    batch.clear()
for i in picked:
    batch.append((f"/registry/configmaps/ns-{i % 200}/cm-{i:07d}".encode(), os.urandom(size // 2).hex().encode()))
    if len(batch) == 100:
        flush()
if batch:
    flush()
PY
}
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
r() { "$repo_bin" --password-file pw -r repo "$@"; }
# Under GNU time: the binary itself, not the shell function.
timed() { /usr/bin/time -f %M -o rss "$repo_bin" --password-file pw -r repo "$@"; }

load
s=$(now); ETCDCTL_API=3 etcdctl --endpoints $ep snapshot save saved.db >/dev/null 2>&1; e=$(now)
printf 'etcd: %s keys of %s bytes; database %s bytes\n' "$keys" "$value" "$(stat -c %s saved.db)"
printf 'etcdctl snapshot save: %.2f s\n' "$(secs "$s" "$e")"
r init --kdf-memory-kib 65536 >/dev/null
s=$(now); timed --json backup --etcd $ep >first.json; e=$(now)
printf 'repo backup --etcd, first: %.2f s, %s bytes added, peak RSS %s KiB\n' \
  "$(secs "$s" "$e")" "$(field first.json "v['summary']['new_bytes_stored']")" "$(cat rss)"
for rep in $(seq "$reps"); do
  load churn "$rep"
  s=$(now); timed --json backup --etcd $ep >next.json; e=$(now)
  printf 'after rewriting 1%% of the keys, rep %s: %.2f s, %s of %s bytes new (%s stored), peak RSS %s KiB\n' \
    "$rep" "$(secs "$s" "$e")" "$(field next.json "v['summary']['new_bytes_raw']")" \
    "$(field next.json "v['size']")" "$(field next.json "v['summary']['new_bytes_stored']")" "$(cat rss)"
done
rev=$(ETCDCTL_API=3 etcdctl --endpoints $ep endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
ETCDCTL_API=3 etcdctl --endpoints $ep compact "$rev" >/dev/null
ETCDCTL_API=3 etcdctl --endpoints $ep defrag >/dev/null
s=$(now); r --json backup --etcd $ep >defrag.json; e=$(now)
printf 'after compaction and defragmentation: %.2f s, %s of %s bytes new\n' \
  "$(secs "$s" "$e")" "$(field defrag.json "v['summary']['new_bytes_raw']")" "$(field defrag.json "v['size']")"
s=$(now); r restore latest --target out >/dev/null; e=$(now)
printf 'repo restore of the last snapshot: %.2f s\n' "$(secs "$s" "$e")"
ETCDCTL_API=3 etcdctl snapshot restore out/etcd-snapshot.db --data-dir rebuilt >/dev/null 2>&1 \
  && echo 'etcdctl snapshot restore accepts the restored file'
r stats | tail -n 4
