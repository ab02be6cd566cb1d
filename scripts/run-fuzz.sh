#!/usr/bin/env bash
# Runs each libFuzzer harness given for FUZZ_SECONDS on its seed corpus
# (tests/fuzz/corpus/<name>), with new inputs kept in build/fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
status=0
for bin in "$@"; do
    name=$(basename "$bin")
    seeds=tests/fuzz/corpus/${name#fuzz_}
    work=build/fuzz/corpus/${name#fuzz_}
    mkdir -p "$work" "$seeds"
    echo "fuzz  $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix=build/fuzz/"$name"- "$work" "$seeds" >build/fuzz/"$name".log 2>&1; then
        echo "FAIL  $name: see build/fuzz/$name.log"
        tail -n 30 build/fuzz/"$name".log
        status=1
    else
        grep -E '^#[0-9]+.*DONE' build/fuzz/"$name".log | tail -1 || true
    fi
done
exit $status
