#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a cycle.

Nodes are module files of `SRC` (a crate's src/ directory); an edge is a `crate::`,
`super::` or `self::` path (imports, paths in code and doc links) from one module to another
that is not its ancestor. Prints each cycle with its edges and exits 1 if there is any.
Usage: scripts/check-module-cycles.py SRC [SRC...]
"""
import os, re, sys
from collections import defaultdict
def check(src):
    def modpath(f):
        rel = os.path.relpath(f, src)[:-3]
        parts = rel.split('/')
        if parts[-1] in ('mod','lib','main'): parts = parts[:-1]
        return tuple(parts)
    files = {}
    for root, _, fs in os.walk(src):
        for n in fs:
            if n.endswith('.rs'):
                files[modpath(os.path.join(root, n))] = os.path.join(root, n)
    nodes = set(files)
    def resolve(cur, path):
        # longest prefix that is a module
        for i in range(len(path), 0, -1):
            if tuple(path[:i]) in nodes: return tuple(path[:i])
        return None
    edges = defaultdict(set)
    for m, f in files.items():
        text = open(f).read()
        # strip test modules roughly
        text = re.split(r'#\[cfg\(test\)\]\s*mod tests\s*\{', text)[0]
        is_dir = os.path.basename(f) in ('mod.rs','lib.rs','main.rs')
        for mm in re.finditer(r'\b(crate|super|self)((?:::\w+)+)', text):
            kind, rest = mm.group(1), mm.group(2).split('::')[1:]
            if kind == 'crate': base = []
            elif kind == 'self': base = list(m)
            else:
                base = list(m[:-1])
                while rest and rest[0] == 'super':
                    base = base[:-1]; rest = rest[1:]
            # braces: crate::{a, b}
            tgt = resolve(m, base + rest)
            if tgt and tgt != m and not (m[:len(tgt)] == tgt):
                edges[m].add(tgt)
        # use crate::{a::x, b::y}
        for mm in re.finditer(r'\buse (crate|super)::\{([^;]*)\};', text, re.S):
            base = [] if mm.group(1)=='crate' else list(m[:-1])
            for item in re.split(r',\s*', mm.group(2)):
                item = item.strip().split('::')
                tgt = resolve(m, base + [x.strip('{} \n') for x in item if x])
                if tgt and tgt != m and not (m[:len(tgt)] == tgt):
                    edges[m].add(tgt)
    # Tarjan SCC
    idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
    sys.setrecursionlimit(10000)
    def sc(v):
        idx[v] = low[v] = c[0]; c[0]+=1; st.append(v); on.add(v)
        for w in edges[v]:
            if w not in idx: sc(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: sccs.append(comp)
    for v in sorted(nodes):
        if v not in idx: sc(v)
    for comp in sccs:
        names = sorted('::'.join(x) or 'lib' for x in comp)
        print('cycle:', ', '.join(names))
        for a in comp:
            for b in edges[a]:
                if b in comp: print('   ', '::'.join(a), '->', '::'.join(b))

    return len(sccs)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    found = 0
    for src in sys.argv[1:]:
        n = check(src)
        if n:
            print(f"{src}: {n} import cycle(s)")
        found += n
    sys.exit(1 if found else 0)
