#!/usr/bin/env bash
# Restore time of two builds of `repo` (OLD and NEW) on the same repository, same machine,
# alternating runs; prints medians. 20,000 files of 2 KiB in 200 directories plus 5 x 20 MiB.
#
#   OLD=/path/to/old/repo NEW=target/release/repo N=5 bash benches/e2e/restore-ab.sh
#
# Each run restores into a fresh directory, and all are removed only at the end: removing
# 20,000 files just before a run makes ext4 search past recently deleted inodes when the next
# run creates its files, which slowed whichever run came next by up to half.
set -euo pipefail
: "${OLD:?set OLD to the repo binary to compare against}"
NEW=${NEW:-target/release/repo}
W=${W:-/tmp/rbench}; N=${N:-5}
rm -rf "$W"; mkdir -p "$W/src"
python3 - "$W/src" <<'PY'
import os, sys, random
root = sys.argv[1]; r = random.Random(7)
for d in range(200):
    p = os.path.join(root, f"d{d:03}"); os.makedirs(p)
    for f in range(100):
        with open(os.path.join(p, f"f{f:03}"), "wb") as fh: fh.write(r.randbytes(2048))
for i in range(5):
    with open(os.path.join(root, f"big{i}"), "wb") as fh: fh.write(r.randbytes(20 << 20))
PY
export KAIRN_PASSWORD=bench
"$OLD" -r "$W/repo" -q init --kdf-memory-kib 64 --kdf-iterations 1
"$OLD" -r "$W/repo" -q backup "$W/src"
for i in $(seq "$N"); do
  for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    /usr/bin/time -f "$which %e %U %S %M" -a -o "$W/times" "$bin" -r "$W/repo" -q restore latest --target "$W/t-$which-$i"
  done
done
rm -rf "$W"/t-*
python3 - "$W/times" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
for which in ("old", "new"):
    w = [float(r[1]) for r in rows if r[0] == which]
    c = [float(r[2]) + float(r[3]) for r in rows if r[0] == which]
    m = [int(r[4]) for r in rows if r[0] == which]
    print(f"{which}: wall median {statistics.median(w):.2f}s, cpu median {statistics.median(c):.2f}s, peak rss median {statistics.median(m)//1024} MiB, runs {len(w)}")
PY
