#!/usr/bin/env python3
"""Finds import circles between the files of each crate of the workspace.

A file imports another when it names it through a `crate::` (or `super::`) path:
`use crate::run::ctx::RunCtx;` makes the file importing depend on run/ctx.rs. A circle
(a -> b -> ... -> a) is a sign that a type lives in the wrong place. Crates cannot form
circles (cargo refuses them); files can, so this checks them. Exit status 1 when any
crate has a circle, each printed with the files in it.

Usage: scripts/import-circles.py [ROOT]   (default: the workspace this script is in)
"""
import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)::\{([^;]*)\};", re.S)


def module_files(src: Path) -> dict:
    """Module path (tuple) -> file, for every .rs file under src."""
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("lib", "main", "mod"):
            parts = parts[:-1]
        mods[tuple(parts)] = f
    return mods


def strip_tests(text: str) -> str:
    """The text without `#[cfg(test)]` blocks (tests may import anything)."""
    out, i = [], 0
    lines = text.split("\n")
    while i < len(lines):
        if lines[i].strip().startswith("#[cfg(test)]"):
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith("#["):
                j += 1
            if j < len(lines) and "{" in lines[j]:
                depth = 0
                while j < len(lines):
                    depth += lines[j].count("{") - lines[j].count("}")
                    if depth <= 0:
                        break
                    j += 1
                i = j + 1
                continue
            i = j + 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def resolve(mods: dict, base: tuple, segs: list):
    """The longest module prefix of base+segs that is a file."""
    path = list(base) + segs
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def edges(mods: dict) -> dict:
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        if f.name.endswith("_tests.rs") or f.name == "tests.rs":
            continue
        # Comments (docs included) name paths without importing them.
        text = re.sub(r"//[^\n]*", "", strip_tests(f.read_text()))
        # `super` is the parent module of this file's module (for mod.rs/lib.rs, of itself).
        parent = m if f.name in ("mod.rs", "lib.rs") else m[:-1]
        refs = []
        for g in USE_GROUP.finditer(text):
            kind, body = g.group(1), g.group(2)
            for item in re.split(r"[,{}\s]+", body):
                if item and item != "self":
                    refs.append((kind, item.split("::")))
        for p in PATH.finditer(text):
            refs.append((p.group(1), p.group(2).strip(":").split("::")))
        for kind, segs in refs:
            base = () if kind == "crate" else parent[:-1] if f.name in ("mod.rs", "lib.rs") else parent
            target = resolve(mods, base, segs)
            # lib.rs/mod.rs only declare and re-export: an arrow to a parent module
            # file (a `mod.rs` or `lib.rs`) is not a dependency on its children.
            if target is not None and target != m and not (len(target) < len(m) and m[: len(target)] == target):
                graph[m].add(target)
    return graph


def circles(graph: dict) -> list:
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    found = 0
    for src in sorted(root.glob("*/src")):
        mods = module_files(src)
        for comp in circles(edges(mods)):
            found += 1
            files = ", ".join(sorted(str(mods[m].relative_to(root)) for m in comp))
            print(f"import circle in {src.parent.name}: {files}")
    if found:
        return 1
    print(f"import-circles: no circle between the files of any crate under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
