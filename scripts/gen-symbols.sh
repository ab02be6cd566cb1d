#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writes the linker version script of libmayfly.so on stdout: the functions
# that the public headers given as arguments declare are exported, every
# other symbol stays local. So the shared library's ABI is exactly what a
# workload can see, and internal helpers can change freely.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: gen-symbols.sh PUBLIC_HEADER..." >&2; exit 2; }
syms=$(grep -hE '^[A-Za-z_]' "$@" |
    grep -vE '^(static|#|typedef|struct [a-z_0-9]+ \{|enum|extern "C")' |
    grep -oE '\bmf_[a-z0-9_]+\(' | tr -d '(' | sort -u)
[ -n "$syms" ] || { echo "gen-symbols.sh: no function found in $*" >&2; exit 1; }
echo "MAYFLY_0 {"
echo "  global:"
for s in $syms; do echo "    $s;"; done
echo "  local: *;"
echo "};"
