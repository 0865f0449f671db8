#!/usr/bin/env python3
"""Fails on a source file over 600 lines or a function over 100 lines (tests excepted).

A file is measured up to its first `#[cfg(test)]`; files under a `tests/` folder and the
fuzz targets are left out. A function runs from its `fn` line to the line where its braces
close. Usage: check-size.py DIR...
"""
import pathlib
import re
import sys

MAX_FILE, MAX_FN = 600, 100
FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+|async\s+|unsafe\s+)*fn\s+(\w+)")


def body(lines):
    cut = next((i for i, l in enumerate(lines) if l.strip().startswith("#[cfg(test)]")), len(lines))
    return lines[:cut]


def long_functions(lines):
    out = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for j in range(i, len(lines)):
            code = re.sub(r'"(?:\\.|[^"\\])*"|//.*', "", lines[j])
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if opened and depth <= 0:
                if j - i + 1 > MAX_FN:
                    out.append((m.group(1), i + 1, j - i + 1))
                break
            if not opened and code.rstrip().endswith(";"):
                break  # a declaration without a body
    return out


status = 0
for root in sys.argv[1:]:
    for f in sorted(pathlib.Path(root).rglob("*.rs")):
        if "tests" in f.parts or f.name == "tests.rs" or "fuzz" in f.parts or "target" in f.parts:
            continue
        lines = body(f.read_text().splitlines())
        if len(lines) > MAX_FILE:
            print(f"{f}: {len(lines)} lines before its tests (at most {MAX_FILE})", file=sys.stderr)
            status = 1
        for name, at, n in long_functions(lines):
            print(f"{f}:{at}: fn {name} is {n} lines (at most {MAX_FN})", file=sys.stderr)
            status = 1
sys.exit(status)
