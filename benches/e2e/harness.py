#!/usr/bin/env python3
"""End-to-end benchmark: Kairn against restic, rustic and borg on the same data, same machine,
same run. See BENCHMARKS.md.

    python3 benches/e2e/harness.py [--datasets pg,src,random,sparse,tiny] [--tools ...] [--work DIR]
                                   [--repeat N]

For every dataset it runs, for each tool in turn: first backup, incremental backup (after the
same change for every tool), re-backup with nothing changed, full restore, and a check that
reads all data. Each command runs under GNU time; the table gives wall and CPU seconds, peak
RSS, repository size, and Kairn's ratio to the best peer. With --repeat N the whole sequence runs
N times from fresh repositories and every figure is the median of the N runs. The compression bound is
`tar | zstd -3 -T0` over the same bytes; the restore bound is `zstd -d -T0 | tar -x` of the same
tree into the same kind of target. Every restore (and the bound) writes into a fresh ext4
filesystem, a loop-mounted image on the same disk (see FreshFilesystem), so that no tool pays for
the files another one deleted.

Settings are made equivalent: encryption on everywhere; zstd level 3 (restic `auto`, its only
zstd setting near 3; borg `zstd,3`; rustic level 3; Kairn's default).
"""

import argparse
import json
import os
import random
import statistics
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "benchmark password"
ENV = dict(os.environ, KAIRN_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD, BORG_PASSPHRASE=PASSWORD,
           RUSTIC_PASSWORD=PASSWORD, BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_CHECK_I_KNOW_WHAT_I_AM_DOING="YES")
KAIRN = ROOT / "target/release/repo"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, env=ENV, **kw)


def timed(cmd, cwd=None):
    """Runs cmd under GNU time; returns (wall, cpu, max_rss_kib)."""
    out = Path("/tmp/kairn-bench-time.txt")
    full = ["/usr/bin/time", "-o", str(out), "-f", "%e %U %S %M"] + cmd
    r = subprocess.run(full, env=ENV, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode not in (0, 3):  # 3: kairn's "some files unreadable"; reported below anyway
        sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}")
    wall, user, sys_, rss = out.read_text().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss)


def du(path):
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def warm(path):
    subprocess.run(f"tar cf - -C '{path}' . 2>/dev/null | cat > /dev/null", shell=True)


# ---------------------------------------------------------------- datasets

def noise(n, rng):
    return rng.randbytes(n)


def make_random(d):
    rng = random.Random(1)
    for i in range(8):
        (d / f"blob{i}.bin").write_bytes(noise(128 << 20, rng))


def change_random(d):
    rng = random.Random(2)
    with open(d / "blob3.bin", "r+b") as f:
        for _ in range(16):
            f.seek(rng.randrange(0, (128 << 20) - (1 << 20)))
            f.write(noise(1 << 20, rng))
    (d / "new.bin").write_bytes(noise(64 << 20, rng))


def make_sparse(d):
    rng = random.Random(3)
    with open(d / "disk.img", "wb") as f:
        f.truncate(8 << 30)
        for i in range(16):  # 16 extents of 64 MiB = 1 GiB of data
            f.seek(i * (512 << 20) + (7 << 20))
            f.write(noise(64 << 20, rng))


def change_sparse(d):
    rng = random.Random(4)
    with open(d / "disk.img", "r+b") as f:
        for i in range(8):
            f.seek(rng.randrange(0, 8 << 30, 4096))
            f.write(noise(4 << 20, rng))


def make_src(d):
    sources = [Path.home() / ".cargo/registry/src", Path("/usr/include"),
               Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"]
    n = 0
    for s in sources:
        if not s.exists():
            continue
        for p in sorted(s.rglob("*")):
            if p.is_file() and not p.is_symlink() and p.suffix not in (".pyc", ".so", ".a") and p.stat().st_size < (1 << 20):
                dest = d / s.name / p.relative_to(s)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dest)
                n += 1
    if n < 30000:
        raise SystemExit(f"only {n} source files found; need 30,000")


def change_src(d):
    files = sorted(p for p in d.rglob("*") if p.is_file())
    rng = random.Random(5)
    for p in rng.sample(files, len(files) // 100):
        with open(p, "a") as f:
            f.write("\n// edited by the benchmark\n")
    new = d / "new-module"
    new.mkdir(exist_ok=True)
    for i in range(200):
        (new / f"file{i}.rs").write_text(f"pub fn f{i}() -> u32 {{ {i} }}\n" * 40)


def make_tiny(d):
    for i in range(1000):
        sub = d / f"{i:03d}"
        sub.mkdir()
        for j in range(1000):
            (sub / f"{j:03d}.txt").write_bytes(b"tiny file %d/%d\n" % (i, j))


def change_tiny(d):
    rng = random.Random(6)
    for _ in range(1000):
        i, j = rng.randrange(1000), rng.randrange(1000)
        (d / f"{i:03d}" / f"{j:03d}.txt").write_bytes(b"changed %d/%d\n" % (i, j))
    (d / "new").mkdir(exist_ok=True)
    for j in range(1000):
        (d / "new" / f"{j}.txt").write_bytes(b"new %d\n" % j)


def pg(cmd, data, extra=""):
    return f"runuser -u postgres -- {PG_BIN}/{cmd} -D '{data}' {extra}"


def pg_run(data, body):
    sock = "/tmp/kairn-bench-pg"
    os.makedirs(sock, exist_ok=True)
    shutil.chown(sock, "postgres")
    opts = f"-c listen_addresses='' -c unix_socket_directories={sock} -c port=5499"
    sh(pg("pg_ctl", data, f"-w -l /tmp/kairn-bench-pg.log -o \"{opts}\" start"), stdout=subprocess.DEVNULL)
    try:
        body(f"runuser -u postgres -- pgbench -h {sock} -p 5499")
    finally:
        sh(pg("pg_ctl", data, "-w -m fast stop"), stdout=subprocess.DEVNULL)


def make_pg(d):
    data = d / "data"
    shutil.chown(d, "postgres")
    sh(pg("initdb", data, "--no-sync -E UTF8 --locale C"), stdout=subprocess.DEVNULL)
    pg_run(data, lambda b: sh(f"{b} -i -q -s 30 postgres", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def change_pg(d):
    pg_run(d / "data", lambda b: sh(f"{b} -c 4 -j 2 -t 10000 postgres", stdout=subprocess.DEVNULL))


DATASETS = {
    "pg": ("PostgreSQL data dir, pgbench -s 30, then 40,000 transactions", make_pg, change_pg),
    "src": ("30,000+ small source files, then 1% edited and 200 added", make_src, change_src),
    "random": ("1 GiB incompressible in 8 files, then 16 MiB rewritten and 64 MiB added", make_random, change_random),
    "sparse": ("8 GiB sparse disk image holding 1 GiB, then 32 MiB written", make_sparse, change_sparse),
    "tiny": ("1,000,000 tiny files, then 1,000 changed and 1,000 added", make_tiny, change_tiny),
}

# ---------------------------------------------------------------- tools


class FreshFilesystem:
    """Each restore writes into a new, empty ext4 filesystem (a loop-mounted image on the same
    disk). Restoring into a directory emptied just before measured ext4's inode allocator, not
    the tools: for minutes after tens of thousands of files are deleted, ext4 skips their
    "recently deleted" inodes, and creating files became 2-5x slower, in proportions that varied
    from run to run. Without root (no mount), a fresh directory is used, with that caveat."""

    def __init__(self, image, mountpoint, src):
        self.image, self.mountpoint = image, mountpoint
        kib = int(subprocess.run(["du", "-sk", str(src)], capture_output=True, text=True).stdout.split()[0])
        self.size = 2 * kib * 1024 + (1 << 30)
        self.inodes = 2 * sum(len(f) + len(d) for _, d, f in os.walk(src)) + 10000
        self.mounted = False

    def renew(self):
        self.drop()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and shutil.which("mkfs.ext4"):
            with open(self.image, "wb") as f:
                f.truncate(self.size)
            sh(["mkfs.ext4", "-q", "-F", "-N", str(self.inodes), "-E", "lazy_itable_init=0,lazy_journal_init=0",
                str(self.image)])
            sh(["mount", "-o", "loop", str(self.image), str(self.mountpoint)])
            self.mounted = True

    def drop(self):
        if self.mounted:
            sh(["umount", str(self.mountpoint)])
            self.mounted = False
        if self.image.exists():
            self.image.unlink()
        shutil.rmtree(self.mountpoint, ignore_errors=True)


class Tool:
    def __init__(self, name, work):
        self.name, self.repo = name, work / f"repo-{name}"

    def available(self):
        return shutil.which({"kairn": str(KAIRN)}.get(self.name, self.name)) is not None


class Kairn(Tool):
    def init(self):
        sh([str(KAIRN), "-r", str(self.repo), "init"], stdout=subprocess.DEVNULL)

    def backup(self, src):
        return [str(KAIRN), "-r", str(self.repo), "-q", "backup", str(src), "--host", "bench"]

    def restore(self, src, target):
        return [str(KAIRN), "-r", str(self.repo), "-q", "restore", "latest", "--target", str(target)]

    def check(self):
        return [str(KAIRN), "-r", str(self.repo), "-q", "check", "--read-data"]


class Restic(Tool):
    def init(self):
        sh(["restic", "-r", str(self.repo), "init", "--repository-version", "2"], stdout=subprocess.DEVNULL)

    def backup(self, src):
        return ["restic", "-r", str(self.repo), "-q", "backup", str(src), "--host", "bench", "--compression", "auto"]

    def restore(self, src, target):
        return ["restic", "-r", str(self.repo), "-q", "restore", "latest", "--target", str(target)]

    def check(self):
        return ["restic", "-r", str(self.repo), "-q", "check", "--read-data"]


class Rustic(Tool):
    def init(self):
        sh(["rustic", "-r", str(self.repo), "init", "--set-compression", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def backup(self, src):
        return ["rustic", "-r", str(self.repo), "--no-progress", "backup", str(src), "--host", "bench"]

    def restore(self, src, target):
        return ["rustic", "-r", str(self.repo), "--no-progress", "restore", "latest", str(target)]

    def check(self):
        return ["rustic", "-r", str(self.repo), "--no-progress", "check", "--read-data"]


class Borg(Tool):
    n = 0

    def init(self):
        sh(["borg", "init", "-e", "repokey-blake2", str(self.repo)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def backup(self, src):
        Borg.n += 1
        return ["borg", "create", "--compression", "zstd,3", f"{self.repo}::s{Borg.n}", str(src)]

    def restore(self, src, target):
        # borg extracts into the working directory, with the archived path below it.
        return ["borg", "extract", f"{self.repo}::s{Borg.n}"]

    def check(self):
        return ["borg", "check", "--verify-data", str(self.repo)]


TOOLS = {"kairn": Kairn, "restic": Restic, "rustic": Rustic, "borg": Borg}

# ---------------------------------------------------------------- the run
# Every tool restores its whole latest snapshot (the dataset at its absolute path) into an
# empty directory: restic 0.14 has no `snapshot:subpath` syntax, and the bytes are the same.


def run_dataset(name, work, tools, results):
    desc, make, change = DATASETS[name]
    src = work / "data" / name
    marker = work / "data" / f"{name}.ready"
    if not marker.exists():
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        print(f"[{name}] preparing: {desc}", flush=True)
        make(src)
        marker.touch()
    # Every tool starts from the same state: the prepared dataset, restored from a pristine copy.
    pristine = work / "data" / f"{name}.pristine"
    if not pristine.exists():
        sh(["cp", "-a", "--sparse=always", str(src), str(pristine)])
    else:
        shutil.rmtree(src)
        sh(["cp", "-a", "--sparse=always", str(pristine), str(src)])
    logical = du(src)
    bound_wall, _, _ = timed(["sh", "-c", f"tar cf - -C '{src}' . --sparse | zstd -3 -T0 -q -o /dev/null"])
    bound_size = int(subprocess.run(f"tar cf - -C '{src}' . --sparse | zstd -3 -T0 -q -c | wc -c", shell=True,
                                    capture_output=True, text=True).stdout)
    results.append({"dataset": name, "tool": "zstd -3 -T0 (bound)", "phase": "first backup",
                    "wall": bound_wall, "cpu": None, "rss": None, "size": bound_size})
    live = [TOOLS[t](t, work) for t in tools]
    live = [t for t in live if t.available() or print(f"[{name}] {t.name} not installed: skipped")]
    for t in live:
        shutil.rmtree(t.repo, ignore_errors=True)
        t.init()

    def phase(label, make_cmd, before=None, cwd_of=None):
        for t in live:
            if before:
                before(t)
            warm(src)
            cwd = cwd_of(t) if cwd_of else None
            wall, cpu, rss = timed(make_cmd(t), cwd=cwd)
            results.append({"dataset": name, "tool": t.name, "phase": label, "wall": wall, "cpu": cpu,
                            "rss": rss, "size": du(t.repo)})
            print(f"[{name}] {label:<22} {t.name:<7} wall {wall:8.2f} s  cpu {cpu:8.2f} s  rss {rss / 1024:8.1f} MiB  "
                  f"repo {du(t.repo) / 2**20:9.1f} MiB", flush=True)

    phase("first backup", lambda t: t.backup(src))
    print(f"[{name}] changing the dataset", flush=True)
    change(src)
    phase("incremental backup", lambda t: t.backup(src))
    phase("nothing changed", lambda t: t.backup(src))
    target = work / "restore"
    restore_fs = FreshFilesystem(work / "restore.img", target, src)

    def clean(_t):
        restore_fs.renew()
    # The restore bound: the same tree, as one zstd-compressed tar made beforehand, decompressed
    # and written to the same disk. Like the tools, it starts from a cold target and a warm cache.
    archive = work / f"{name}.tar.zst"
    sh(["sh", "-c", f"tar cf - -C '{src}' . --sparse | zstd -3 -T0 -q -f -o '{archive}'"])
    clean(None)
    warm(archive)
    bound_wall, bound_cpu, _ = timed(["sh", "-c", f"zstd -d -T0 -q -c '{archive}' | tar -x -C '{target}'"])
    results.append({"dataset": name, "tool": "tar.zst extract (bound)", "phase": "full restore",
                    "wall": bound_wall, "cpu": bound_cpu, "rss": None, "size": None})
    print(f"[{name}] {'full restore':<22} bound   wall {bound_wall:8.2f} s", flush=True)
    archive.unlink()
    phase("full restore", lambda t: t.restore(src, target), before=clean, cwd_of=lambda t: target)
    restore_fs.drop()
    phase("check, all data", lambda t: t.check())
    for t in live:
        shutil.rmtree(t.repo, ignore_errors=True)
    results.append({"dataset": name, "tool": "logical size", "phase": "", "size": logical})


def medians(results):
    """One row per (dataset, phase, tool), each figure the median over the rounds."""
    groups = {}
    for r in results:
        groups.setdefault((r["dataset"], r["phase"], r["tool"]), []).append(r)
    rows = []
    for (d, ph, tool), rs in groups.items():
        med = lambda k: statistics.median(r[k] for r in rs) if rs[0].get(k) is not None else None
        rows.append({"dataset": d, "phase": ph, "tool": tool, "n": len(rs), "wall": med("wall"),
                     "cpu": med("cpu"), "rss": med("rss"), "size": med("size")})
    return rows


def fmt(v, f):
    return "" if v is None else f.format(v)


def table(rows):
    lines = ["| dataset | phase | tool | runs | wall s | CPU s | peak RSS MiB | repo MiB | Kairn / best peer (wall) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for (d, ph) in dict.fromkeys((r["dataset"], r["phase"]) for r in rows if r["phase"]):
        group = [r for r in rows if r["dataset"] == d and r["phase"] == ph]
        best = min((r["wall"] for r in group if r["tool"] in PEERS), default=None)
        for r in group:
            ratio = f"{r['wall'] / best:.2f}" if r["tool"] == "kairn" and best else ""
            lines.append(f"| {d} | {ph} | {r['tool']} | {r['n']} | {fmt(r['wall'], '{:.2f}')} | "
                         f"{fmt(r['cpu'], '{:.2f}')} | {fmt(r['rss'] and r['rss'] / 1024, '{:.0f}')} | "
                         f"{fmt(r['size'] and r['size'] / 2**20, '{:.1f}')} | {ratio} |")
    return "\n".join(lines)


def summary(rows):
    """Kairn against the best peer: wall ratio, peak RSS, and repository size ratio."""
    lines = ["| dataset | phase | Kairn / best peer (wall) | Kairn / bound (wall) | Kairn RSS MiB | "
             "lowest peer RSS MiB | Kairn repo / smallest peer repo |", "|---|---|---:|---:|---:|---:|---:|"]
    for (d, ph) in dict.fromkeys((r["dataset"], r["phase"]) for r in rows if r["phase"]):
        group = [r for r in rows if r["dataset"] == d and r["phase"] == ph]
        kairn = next((r for r in group if r["tool"] == "kairn"), None)
        peers = [r for r in group if r["tool"] in PEERS]
        if not kairn or not peers:
            continue
        best = min(r["wall"] for r in peers)
        low_rss = min(r["rss"] for r in peers)
        small = min(r["size"] for r in peers)
        bound = next((r["wall"] for r in group if r["tool"].endswith("(bound)")), None)
        to_bound = f"{kairn['wall'] / bound:.2f}" if bound else ""
        lines.append(f"| {d} | {ph} | {kairn['wall'] / best:.2f} | {to_bound} | {kairn['rss'] / 1024:.0f} | "
                     f"{low_rss / 1024:.0f} | {kairn['size'] / small:.3f} |")
    return "\n".join(lines)


PEERS = ("restic", "rustic", "borg")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="src,random,pg,sparse,tiny")
    ap.add_argument("--tools", default="kairn,restic,rustic,borg")
    ap.add_argument("--work", default="/var/tmp/kairn-bench")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per dataset; figures are medians")
    ap.add_argument("--json", help="also write the raw results here")
    a = ap.parse_args()
    work = Path(a.work)
    (work / "data").mkdir(parents=True, exist_ok=True)
    sh(["cargo", "build", "--release", "-q", "-p", "repo-cli"], cwd=ROOT)
    results = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for d in a.datasets.split(","):
        for _ in range(a.repeat):
            run_dataset(d, work, a.tools.split(","), results)
    rows = medians(results)
    print()
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; run {started}; medians of {a.repeat}")
    print(summary(rows))
    print()
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
