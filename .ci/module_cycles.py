#!/usr/bin/env python3
"""Reports import cycles between the modules of each crate under crates/.

A module is a source file (src/lib.rs is the crate root; src/a/mod.rs and src/a.rs are
module `a`). An edge m -> n means m's text names a path `crate::n...` or `super::...`
(resolved from m) that lands in module n; `mod` declarations are not edges. Inline
`#[cfg(test)] mod tests` blocks belong to their file. Exits 1 if any crate has a cycle.
Python 3 standard library only.
"""
import os, re, sys

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{([^;]*)\}\s*;", re.S)

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] in ("lib", "main", "mod"):
                rel = rel[:-1]
            if rel and rel[0] == "bin":
                continue
            mods[tuple(rel)] = os.path.join(root, f)
    return mods

def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)

def reexports(mods):
    """item name -> (kind, path segments) for each module's `pub use` items."""
    table = {}
    for m, path in mods.items():
        text = strip_comments(open(path, encoding="utf-8").read())
        items = {}
        for stmt in re.findall(r"\bpub(?:\([a-z]+\))?\s+use\s+([^;]*);", text):
            stmt = re.sub(r"\s+", "", stmt)
            match = re.match(r"((?:[A-Za-z_][A-Za-z0-9_]*::)*)(\{.*\}|[A-Za-z_][A-Za-z0-9_]*)$", stmt)
            if not match:
                continue
            prefix = [x for x in match.group(1).split("::") if x]
            names = match.group(2).strip("{}").split(",")
            for name in names:
                parts = [x for x in name.split("::") if x]
                if not parts or parts[-1] == "self":
                    continue
                full = prefix + parts
                kind = full[0] if full[0] in ("crate", "super", "self") else "self"
                rest = full[1:] if full[0] in ("crate", "super", "self") else full
                target = resolve(mods, m, kind, list(rest))
                # A name may be re-exported twice (a trait and its derive macro): keep the
                # one defined in this crate.
                if full[-1] not in items or (target is not None and target != m):
                    items[full[-1]] = (kind, rest)
        table.setdefault(m, {}).update(items)
        # `#[macro_export]` macros live at the crate root but are defined here.
        for name in re.findall(r"#\[macro_export\]\s*macro_rules!\s*([A-Za-z_][A-Za-z0-9_]*)", text):
            table.setdefault((), {})[name] = ("crate", list(m) + ["__macro__"])
    return table

def resolve(mods, here, kind, segs, table=None, depth=0):
    if kind == "crate":
        base = ()
    elif kind == "self":
        base = here
    else:
        base = here[:-1]
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    full = base + tuple(segs)
    for n in range(len(full), -1, -1):
        if full[:n] in mods:
            target = full[:n]
            # An item a module only re-exports is imported from where it is defined.
            if table is not None and n < len(full) and depth < 16:
                via = table.get(target, {}).get(full[n])
                if via is not None:
                    kind2, rest = via
                    if rest and rest[0] == "super":
                        kind2, rest = "super", rest[1:]
                    again = resolve(mods, target, kind2, list(rest), table, depth + 1)
                    if again is not None:
                        return again
            return target
    return None

def edges(mods):
    table = reexports(mods)
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        text = strip_comments(open(path, encoding="utf-8").read())
        refs = []
        for kind, prefix, inner in USE_GROUP.findall(text):
            head = [s for s in prefix.split("::") if s]
            for item in re.split(r"[,{}]", inner):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    refs.append((kind, head + [s for s in item.split("::") if s]))
                elif item == "self":
                    refs.append((kind, head))
        # `use child::Item;` names a child module relatively (2018 edition paths).
        for head, rest in re.findall(r"\buse\s+([a-z_][a-z0-9_]*)((?:::[A-Za-z_{][^;]*)?);", text):
            if head not in ("crate", "super", "self", "std", "core", "alloc") and m + (head,) in mods:
                refs.append(("self", [head]))
        for kind, rest in PATH.findall(text):
            if rest == "::{":
                continue
            refs.append((kind, [s for s in rest.split("::") if s]))
        for kind, segs in refs:
            target = resolve(mods, m, kind, segs, table)
            if target is not None and target != m:
                graph[m].add(target)
    return graph

def cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)
    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out

def name(m):
    return "::".join(m) or "crate"

def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "crates"
    bad = 0
    for crate in sorted(os.listdir(root)):
        src = os.path.join(root, crate, "src")
        if not os.path.isdir(src):
            continue
        graph = edges(modules(src))
        found = cycles(graph)
        for comp in found:
            bad += 1
            members = set(comp)
            pairs = [f"{name(a)} -> {name(b)}" for a in sorted(comp) for b in sorted(graph[a]) if b in members]
            print(f"{crate}: cycle among {', '.join(name(m) for m in sorted(comp))}: {'; '.join(pairs)}")
        print(f"{crate}: {len(graph)} modules, {sum(map(len, graph.values()))} edges, {len(found)} cycles")
    sys.exit(1 if bad else 0)

main()
