#!/usr/bin/python3
"""check-include-cycles.py SRC_DIR: the C sources of keyward include each other in one
direction only. Fails printing every include cycle between modules; passes printing the
module count and the layer order (bottom first).

A module is a header X.h together with the .c files that implement it: X.c, and any .c
in the same directory whose first quoted #include is X.h (house style puts a file's own
header first). A private header X-internal.h (policy/policy-internal.h) is the inner half
of module X and belongs to it. A .c file that implements no header (keywardctl.c) is a
module of its own. There is an edge A -> B when a file of module A (.c or .h) has
#include "B.h" for another module B. Headers not found in the source tree (generated ones
such as keyward-config.h, system headers) do not count.
"""

import os
import re
import sys

DIRS = ("lib", "policy", "daemon", "pam_module", "tools")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
MAX_CYCLES = 1000


def quoted_includes(path):
    out = []
    in_comment = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            # Skip block comments well enough that a commented-out include does not count.
            if in_comment:
                if "*/" not in line:
                    continue
                line = line.split("*/", 1)[1]
                in_comment = False
            if line.lstrip().startswith("/*") and "*/" not in line:
                in_comment = True
                continue
            m = INCLUDE_RE.match(line)
            if m:
                out.append(m.group(1))
    return out


def collect(src):
    headers = {}  # module id ("daemon/manager") -> header path
    sources = []  # .c paths
    for d in DIRS:
        top = os.path.join(src, d)
        if not os.path.isdir(top):
            sys.exit(f"check-include-cycles: {top} is not a directory")
        for root, dirs, files in os.walk(top):
            dirs[:] = sorted(x for x in dirs if not x.startswith("build"))
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, src)
                if name.endswith(".h"):
                    headers[rel[:-2]] = path
                elif name.endswith(".c"):
                    sources.append(path)
    return headers, sources


def resolve(src, including, name, headers):
    """The module id of #include "name" seen in file INCLUDING, or None if it is not ours."""
    base = os.path.relpath(os.path.dirname(including), src)
    local = os.path.normpath(os.path.join(base, name))
    if local.endswith(".h") and local[:-2] in headers:
        return local[:-2]
    # Not next to the includer: any of our directories (they are all on the include path).
    stem = os.path.basename(name)[:-2] if name.endswith(".h") else None
    if stem is None:
        return None
    matches = sorted(m for m in headers if os.path.basename(m) == stem)
    if len(matches) > 1:
        sys.exit(f"check-include-cycles: {including}: \"{name}\" is ambiguous: {matches}")
    return matches[0] if matches else None


def owner(module, headers):
    """X-internal is the private half of module X (when X.h exists)."""
    if module.endswith("-internal") and module[: -len("-internal")] in headers:
        return module[: -len("-internal")]
    return module


def build_graph(src):
    headers, sources = collect(src)
    files = {}
    for m, p in headers.items():
        files.setdefault(owner(m, headers), []).append(p)
    for c in sources:
        rel = os.path.relpath(c, src)[:-2]
        if rel in headers:
            files[owner(rel, headers)].append(c)
            continue
        incs = quoted_includes(c)
        own = resolve(src, c, incs[0], headers) if incs else None
        if own is not None and os.path.dirname(own) != os.path.dirname(rel):
            own = None  # tools/ctl-audit.c starting with lib's audit-json.h implements no lib header
        if own is not None:
            own = owner(own, headers)
            files[own].append(c)
        else:
            files[rel] = [c]  # implements no header of ours: a module of its own
    edges = {m: set() for m in files}
    for m, paths in files.items():
        for p in paths:
            for inc in quoted_includes(p):
                dep = resolve(src, p, inc, headers)
                dep = owner(dep, headers) if dep is not None else None
                if dep is not None and dep != m:
                    edges[m].add(dep)
    return files, edges


def elementary_cycles(edges):
    """Every elementary cycle, each once, starting at its smallest module."""
    order = sorted(edges)
    index = {m: i for i, m in enumerate(order)}
    cycles = []
    for start in order:
        lo = index[start]
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        on_path = {start}
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            if index[nxt] < lo:
                continue
            if nxt == start:
                cycles.append(path + [start])
                if len(cycles) >= MAX_CYCLES:
                    return cycles, True
            elif nxt not in on_path:
                path.append(nxt)
                on_path.add(nxt)
                stack.append((nxt, iter(sorted(edges[nxt]))))
    return cycles, False


def layers(edges):
    level = {}

    def depth(m):
        if m not in level:
            level[m] = 1 + max((depth(d) for d in edges[m]), default=-1)
        return level[m]

    for m in edges:
        depth(m)
    out = {}
    for m, lv in level.items():
        out.setdefault(lv, []).append(m)
    return [sorted(out[lv]) for lv in sorted(out)]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check-include-cycles.py SRC_DIR")
    src = sys.argv[1]
    files, edges = build_graph(src)
    cycles, truncated = elementary_cycles(edges)
    if cycles:
        for cyc in cycles:
            print("include cycle: " + " → ".join(cyc))
        more = f" (stopped at {MAX_CYCLES})" if truncated else ""
        print(f"{len(cycles)} include cycle(s){more} among {len(files)} modules: a module may "
              "include only modules below it; report upward through callbacks instead.")
        return 1
    print(f"{len(files)} modules, no include cycle. Layers, bottom first:")
    for i, layer in enumerate(layers(edges)):
        print(f"  {i}: " + " ".join(layer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
