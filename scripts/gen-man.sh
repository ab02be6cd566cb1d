#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writes a man page (roff) for a mayfly binary on stdout, from the binary's
# own --help text, so that the page and --help can never disagree.
#   scripts/gen-man.sh BINARY VERSION
set -euo pipefail
[ "$#" -eq 2 ] || { echo "usage: gen-man.sh BINARY VERSION" >&2; exit 2; }
bin=$1 version=$2
name=$(basename "$bin")
help=$("$bin" --help 2>&1 || true)
[ -n "$help" ] || { echo "gen-man.sh: $bin --help printed nothing" >&2; exit 1; }
case "$name" in
mayfly-ca) what="the mayfly SPIFFE certificate authority and its admin commands" ;;
mayfly-agent) what="the mayfly SPIFFE node agent and its workload commands" ;;
*) what="a mayfly program" ;;
esac
cat <<ROFF
.TH ${name^^} 8 "" "mayfly $version" "System Administration"
.SH NAME
$name \\- $what
.SH SYNOPSIS
.nf
ROFF
# roff: a leading dot or quote would be read as a request; backslashes escape
printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/'
cat <<ROFF
.fi
.SH SEE ALSO
The files docs/operations.md, docs/api.md and docs/security.md of the mayfly
sources describe every option, the APIs and the threat model.
ROFF
