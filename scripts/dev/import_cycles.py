#!/usr/bin/env python3
"""Import cycles between the engine's top-level modules (actors/src/<module>).

Reads every `crate::<module>` path in actors/src, builds the graph "module A uses
module B" and prints each strongly connected component with more than one module
(a cycle), largest first. Exit status 0 either way: this is a measure, not a gate yet.

    python3 scripts/dev/import_cycles.py
"""
import pathlib
import re
import sys
from collections import defaultdict

root = pathlib.Path(__file__).resolve().parents[2] / "actors" / "src"
graph = defaultdict(set)
paths = re.compile(r"crate::([a-z_][a-z0-9_]*)")
use_groups = re.compile(r"use\s+crate::\{(.*?)\};", re.S)


def top_level_names(block):
    """The first path segment of each item of a `use crate::{...}` group."""
    names, depth, token, expecting = set(), 0, "", True
    for ch in block + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and ch == ",":
            expecting = True
            continue
        if depth == 0 and expecting:
            if ch.isalnum() or ch == "_":
                token += ch
                continue
            if token:
                names.add(token)
                token = ""
                expecting = False
    return names


def is_module(name):
    return (root / name).is_dir() or (root / f"{name}.rs").is_file()


for path in root.rglob("*.rs"):
    rel = path.relative_to(root)
    module = rel.parts[0].removesuffix(".rs")
    if module in ("lib", "main"):
        continue
    text = path.read_text()
    names = set(paths.findall(text))
    for block in use_groups.findall(text):
        names.update(top_level_names(block))
    graph[module].update(n for n in names if n != module and is_module(n))

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop()
            on.discard(w)
            scc.append(w)
            if w == v:
                break
        sccs.append(sorted(scc))


for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
    if v not in index:
        visit(v)

cycles = sorted((s for s in sccs if len(s) > 1), key=len, reverse=True)
print(f"{len(cycles)} cycle(s) among actors/src's top-level modules")
for scc in cycles:
    print(f"  {len(scc)} modules: {' '.join(scc)}")
