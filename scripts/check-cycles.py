#!/usr/bin/env python3
"""Fails when the files of any crate import each other in a circle.

Cargo keeps the crates' direction; inside a crate only this keeps it. Each .rs file is a
module; an edge A -> B means A names B through `crate::`, `super::`, `self::` or a child
module's name (re-exports with `pub use` are not uses). Test modules (from the first `#[cfg(test)]` on) are left out: they may look
back. Usage: check-cycles.py CRATE_SRC_DIR...
"""
import pathlib
import re
import sys

PATH = re.compile(r"\b((?:crate|super|self)\b(?:::[A-Za-z_][A-Za-z0-9_]*)*|[a-z_][a-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def modules(src):
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        mods[tuple(parts)] = f
    return mods


def resolve(path, here, mods):
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] == "self":
        base, segs = list(here), segs[1:]
    elif segs[0] == "super":
        base = list(here)
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    elif tuple(here) + (segs[0],) in mods:
        base = list(here)
    else:
        return None  # another crate, or a type path
    best = None
    for n in range(len(segs) + 1):
        key = tuple(base + segs[:n])
        if key in mods:
            best = key
    return best


def expand_groups(text):
    """`a::{b, c::d}` names `a::b` and `a::c::d`, not `a` itself."""
    group = re.compile(r"([A-Za-z_][A-Za-z0-9_:]*)::\{([^{}]*)\}")
    while True:
        new = group.sub(
            lambda m: " ".join(f"{m.group(1)}::{p.strip()}" for p in m.group(2).split(",") if p.strip()),
            text,
        )
        if new == text:
            return text
        text = new


def cycles(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = f.read_text().split("#[cfg(test)]")[0]
        text = re.sub(r"//[^\n]*", "", text)
        # A re-export is not a use, and `pub(super)` names no module.
        text = re.sub(r"\bpub use [^;]*;", "", text)
        text = re.sub(r"\bpub\((?:crate|super|self|in [^)]*)\)", "pub", text)
        text = expand_groups(text)
        for p in PATH.findall(text):
            t = resolve(p, m, mods)
            if t is not None and t != m:
                edges[m].add(t)
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(mods):
        if m not in state:
            visit(m)
    return found


status = 0
for arg in sys.argv[1:]:
    for cycle in cycles(pathlib.Path(arg)):
        status = 1
        names = " -> ".join("::".join(c) or "(root)" for c in cycle)
        print(f"import cycle in {arg}: {names}", file=sys.stderr)
sys.exit(status)
