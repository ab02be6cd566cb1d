#!/usr/bin/env bash
# Fails when C sources call a function STYLE.md bans: unbounded string
# copies, formatted output without a size, number parsing without error
# reporting, and stack allocation of unbounded size. (VLAs are refused by
# the compiler through -Wvla -Werror.)
set -euo pipefail
cd "$(dirname "$0")/.."
banned='strcpy|strcat|strncpy|strtok|sprintf|vsprintf|atoi|atol|atoll|sscanf|gets|alloca'
files=$(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^build/' || true)
[ -n "$files" ] || exit 0
# shellcheck disable=SC2086
hits=$(grep -nE "(^|[^A-Za-z0-9_])($banned)[[:space:]]*\(" $files | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)' || true)
if [ -n "$hits" ]; then
    echo "banned functions used (see STYLE.md):" >&2
    echo "$hits" >&2
    exit 1
fi
