#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fails when libmayfly's layers are crossed the wrong way, or when headers
include each other in a circle.

libmayfly is api/core < api/pki < api/net < api/workload, with api/internal
(daemon-only helpers) above them all. A file may include headers of its own
layer and of the layers below it, never above; nothing in api/ includes
ca/ or agent/. Every public header (core, pki, net, workload) must say
"Public" or "Internal" in its leading comment, so that a reader knows
whether a workload may include it; api/internal headers are internal by
their place. Run by `make test` (and `make lint`)."""
import os
import re
import sys

ORDER = ["core", "pki", "net", "workload", "internal"]
RANK = {name: i for i, name in enumerate(ORDER)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == "api" and parts[1] in RANK:
        return parts[1]
    return None


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    os.chdir(root)
    problems = []
    graph = {}
    public = set()
    for layer in ORDER:
        d = os.path.join("api", layer)
        if not os.path.isdir(d):
            problems.append("missing layer directory %s" % d)
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            path = "%s/%s" % (d, name)
            text = open(path, encoding="utf-8").read()
            incs = INCLUDE.findall(text)
            graph[path] = [i for i in incs if i.startswith("api/")]
            for inc in incs:
                if inc.startswith(("ca/", "agent/")):
                    problems.append("%s includes daemon header %s" % (path, inc))
                    continue
                other = layer_of(inc)
                if inc.startswith("api/") and other is None:
                    problems.append("%s includes %s, outside every layer" % (path, inc))
                elif other is not None and RANK[other] > RANK[layer]:
                    problems.append("%s (%s) includes %s (%s): an upward include"
                                    % (path, layer, inc, other))
                elif other is not None and not os.path.exists(inc):
                    problems.append("%s includes %s, which does not exist" % (path, inc))
            if name.endswith(".h") and layer != "internal":
                head = text[:1500]
                if " * Public:" in head:
                    public.add(path)
                elif " * Internal:" not in head:
                    problems.append("%s does not say whether it is Public or Internal" % path)

    # a public header is installed: it may include only public headers
    for path in sorted(public):
        for inc in graph[path]:
            if inc not in public:
                problems.append("public %s includes %s, which is not public" % (path, inc))

    # include cycles among api/ files (headers including headers)
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cyc = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                problems.append("include cycle: %s" % " -> ".join(cyc))
            elif state.get(nxt) is None and nxt in graph:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [node])

    if problems:
        for p in problems:
            print("layers: " + p, file=sys.stderr)
        return 1
    print("layers: %d files in %d layers (%d public headers), no upward include, no cycle"
          % (len(graph), len(ORDER), len(public)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
