#!/usr/bin/env bash
# Builds the libFuzzer harness of the fleet's message decoding (with AddressSanitizer) and runs it.
# Usage: fuzz/run-proto-fuzzer.sh [SECONDS]   (default 60; the corpus grows in fuzz/corpus-proto, not committed)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
out="$root/.build/fuzz"
mkdir -p "$out" "$root/fuzz/corpus-proto"
clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$root/Sources/CFleetProto/include" \
    "$root/fuzz/fleet_proto_fuzzer.c" "$root/Sources/CFleetProto/fleet.pb-c.c" \
    "$(pkg-config --variable=libdir libprotobuf-c)/libprotobuf-c.a" -o "$out/fleet_proto_fuzzer" 2>/dev/null \
|| clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$root/Sources/CFleetProto/include" \
    "$root/fuzz/fleet_proto_fuzzer.c" "$root/Sources/CFleetProto/fleet.pb-c.c" -lprotobuf-c \
    -o "$out/fleet_proto_fuzzer"
"$out/fleet_proto_fuzzer" -max_total_time="$seconds" -max_len=4096 "$root/fuzz/corpus-proto"
