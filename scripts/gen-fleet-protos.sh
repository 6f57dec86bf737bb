#!/usr/bin/env bash
# Regenerates the committed protobuf-c code of the fleet's messages from Sources/CFleetProto/proto/fleet.proto.
# Usage: scripts/gen-fleet-protos.sh [OUTPUT_DIR]   (default: the target's own folders)
# The test FleetProtoCodegenTests runs it into a temporary folder and fails when the committed code differs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$root/Sources/CFleetProto"
out="${1:-}"
command -v protoc-c >/dev/null || { echo "gen-fleet-protos: protoc-c is missing; run scripts/bootstrap.sh" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$target/proto" && protoc-c --c_out="$tmp" fleet.proto)
if [ -n "$out" ]; then
    mkdir -p "$out"
    cp "$tmp/fleet.pb-c.c" "$tmp/fleet.pb-c.h" "$out/"
else
    cp "$tmp/fleet.pb-c.c" "$target/fleet.pb-c.c"
    # The header goes where SwiftPM looks for a C target's public headers; the .c includes it by name.
    cp "$tmp/fleet.pb-c.h" "$target/include/fleet.pb-c.h"
fi
