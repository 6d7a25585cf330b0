#!/usr/bin/env python3
"""Source files and functions that are too long to read at once.

    python3 deploy/lint/sizes.py [--max-file 1000] [--max-fn 150]

Prints every `crates/*/src` file over --max-file lines and every function
outside tests over --max-fn lines (from its `fn` line to its closing brace),
longest first, and exits 1 when there is any; 0 otherwise. Test code
(`#[cfg(test)]` modules, `tests/`, `benches/`) is not counted against
functions. deploy/test.sh runs it.
"""

import argparse
import glob
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def strip(line):
    """The line without string literals, chars and comments (enough for brace counting)."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//", 1)[0]


def functions(lines):
    """(name, first line, length) of every function outside #[cfg(test)] modules."""
    out, i, test_depth, depth = [], 0, None, 0
    while i < len(lines):
        text = strip(lines[i])
        if test_depth is None and lines[i].strip() == "#[cfg(test)]":
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if nxt.startswith("mod ") and nxt.endswith("{"):
                test_depth = depth
        m = FN.match(lines[i])
        if m and test_depth is None and not text.rstrip().endswith(";"):
            start, d, j, opened = i, 0, i, False
            while j < len(lines):
                t = strip(lines[j])
                d += t.count("{") - t.count("}")
                opened = opened or "{" in t
                if opened and d <= 0:
                    break
                if not opened and t.rstrip().endswith(";"):
                    break
                j += 1
            out.append((m.group(8), start + 1, j - start + 1))
        depth += text.count("{") - text.count("}")
        if test_depth is not None and depth <= test_depth:
            test_depth = None
        i += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-file", type=int, default=1000)
    ap.add_argument("--max-fn", type=int, default=150)
    args = ap.parse_args()
    long_files, long_fns = [], []
    for path in sorted(glob.glob(os.path.join(ROOT, "crates", "*", "src", "**", "*.rs"), recursive=True)):
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        if len(lines) > args.max_file:
            long_files.append((len(lines), rel))
        for name, line, length in functions(lines):
            if length > args.max_fn:
                long_fns.append((length, f"{rel}:{line}", name))
    for n, rel in sorted(long_files, reverse=True):
        print(f"file over {args.max_file} lines: {rel} ({n})")
    for n, where, name in sorted(long_fns, reverse=True):
        print(f"function over {args.max_fn} lines: {name} at {where} ({n})")
    print(f"sizes: {len(long_files)} files over {args.max_file} lines, {len(long_fns)} functions over {args.max_fn} lines")
    return 1 if long_files or long_fns else 0


if __name__ == "__main__":
    sys.exit(main())
