#!/usr/bin/env bash
# Regenerates the committed protobuf-c code from the committed .proto files with protoc-c.
#   scripts/gen-protos.sh              rewrites the generated files in the source tree
#   scripts/gen-protos.sh --out DIR    writes them under DIR instead (same relative paths), for staleness checks
# Each entry: the proto folder, the .proto file, the folder for the .pb-c.c, the folder for the .pb-c.h.
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
if [ "${1:-}" = "--out" ]; then
    out="${2:?--out needs a directory}"
fi
if ! command -v protoc-c >/dev/null 2>&1; then
    echo "gen-protos: protoc-c is missing; run scripts/bootstrap.sh (it installs protobuf-c-compiler)" >&2
    exit 1
fi

protos=(
    "Sources/COnnx/proto onnx.proto Sources/COnnx Sources/COnnx/include"
)
for entry in "${protos[@]}"; do
    read -r proto_dir proto source_dir header_dir <<<"$entry"
    base="${proto%.proto}"
    work="$(mktemp -d)"
    protoc-c --proto_path="$proto_dir" --c_out="$work" "$proto_dir/$proto"
    target_source="${out:+$out/}$source_dir"
    target_header="${out:+$out/}$header_dir"
    mkdir -p "$target_source" "$target_header"
    mv "$work/$base.pb-c.c" "$target_source/$base.pb-c.c"
    mv "$work/$base.pb-c.h" "$target_header/$base.pb-c.h"
    rm -rf "$work"
done
