#!/usr/bin/env bash
# Builds the libFuzzer harness of the ONNX import (fuzz/onnx_fuzzer.swift) over the ONNX and Engine modules' own
# sources (with libFuzzer's coverage) and Trainer's (for OnnxExport's seed models), with AddressSanitizer, seeds its
# corpus and runs it.
# Usage: fuzz/run-onnx-fuzzer.sh [SECONDS] [extra libFuzzer flags...]   (default 60 s; -jobs/-workers pass through)
#        fuzz/run-onnx-fuzzer.sh --build-only
#        SWIFT_BACKTRACE=enable=no .build/fuzz/onnx_fuzzer CRASH_FILE    (replays one finding; they land in
#        .build/fuzz/artifacts/)
# The corpus grows in fuzz/corpus-onnx (not committed); it is seeded with models OnnxExport writes and, when the
# test venv has the onnx package, models the onnx Python package writes (fuzz/onnx_seeds.py).
#
# Why swiftc and not SwiftPM: a target built with -sanitize=fuzzer must not have a `main` (libFuzzer brings its
# own), which SwiftPM refuses for an executable target, and adding one to Package.swift would break a plain
# `swift build`. So this compiles the same files SwiftPM does (Constraints, ProtobufArena, ONNX, Engine, Trainer,
# the COnnx, CEngineKernels and CTrainerKernels C targets, the system-library module maps), one library per module,
# under one package name so that `package` declarations are visible across them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.build/fuzz"
corpus="$root/fuzz/corpus-onnx"
mkdir -p "$out/modules/COnnx" "$out/modules/CEngineKernels" "$out/modules/CTrainerKernels" "$out/artifacts" "$corpus"

cflags=(-g -O1 -fPIC -fsanitize=fuzzer-no-link,address)
swiftflags=(-g -O -parse-as-library -sanitize=address -package-name nas)
cat > "$out/modules/COnnx/module.modulemap" <<MAP
module COnnx { header "$root/Sources/COnnx/include/onnx.pb-c.h" export * }
MAP
cat > "$out/modules/CEngineKernels/module.modulemap" <<MAP
module CEngineKernels { header "$root/Sources/CEngineKernels/include/nas_engine_kernels.h" export * }
MAP
cat > "$out/modules/CTrainerKernels/module.modulemap" <<MAP
module CTrainerKernels { header "$root/Sources/CTrainerKernels/include/nas_kernels.h" export * }
MAP
includes=(-I "$out/modules/COnnx" -I "$out/modules/CEngineKernels" -I "$out/modules/CTrainerKernels"
    -I "$root/Sources/CZlib" -I "$root/Sources/COpenBLAS" -I "$root/Sources/CProtobufC" -I "$out")

# Rebuilds a library only when a file under its sources (or a library it depends on) is newer; the harness alone
# relinks in seconds.
stale() { [[ ! -e "$1" ]] || [[ -n "$(find "${@:2}" -newer "$1" -print -quit)" ]]; }
if stale "$out/kernels.o" "$root/Sources/COnnx" "$root/Sources/CEngineKernels" "$root/Sources/CTrainerKernels"; then
echo "building the C targets" >&2
clang "${cflags[@]}" -c "$root/Sources/COnnx/onnx.pb-c.c" -I "$root/Sources/COnnx/include" -o "$out/onnx.pb-c.o"
clang "${cflags[@]}" -c "$root/Sources/CEngineKernels/engine_kernels.c" -I "$root/Sources/CEngineKernels/include" \
    -o "$out/engine_kernels.o"
clang "${cflags[@]}" -c "$root/Sources/CTrainerKernels/kernels.c" -I "$root/Sources/CTrainerKernels/include" \
    -o "$out/kernels.o"
fi
# library MODULE [extra swiftc flags...]: libMODULE.a and its .swiftmodule from Sources/MODULE.
library() {
    local module="$1"
    shift
    (cd "$out" && swiftc "${swiftflags[@]}" "$@" -module-name "$module" -emit-module -emit-library -static \
        "${includes[@]}" -o "$out/lib$module.a" $(find "$root/Sources/$module" -name '*.swift'))
}
if stale "$out/libConstraints.a" "$root/Sources/Constraints"; then
    echo "building Constraints" >&2
    library Constraints
fi
if stale "$out/libProtobufArena.a" "$root/Sources/ProtobufArena"; then
    echo "building ProtobufArena" >&2
    library ProtobufArena
fi
if stale "$out/libONNX.a" "$root/Sources/ONNX" "$out/libProtobufArena.a"; then
    echo "building ONNX (with libFuzzer's coverage)" >&2
    library ONNX -sanitize=fuzzer
fi
if stale "$out/libEngine.a" "$root/Sources/Engine" "$out/libONNX.a"; then
    echo "building Engine (with libFuzzer's coverage)" >&2
    library Engine -sanitize=fuzzer
fi
if stale "$out/libTrainer.a" "$root/Sources/Trainer" "$out/libONNX.a" "$out/libConstraints.a"; then
    echo "building Trainer (for the seeds OnnxExport writes)" >&2
    library Trainer
fi
echo "linking the harness" >&2
swiftc "${swiftflags[@]}" -sanitize=fuzzer -module-name OnnxFuzzer "${includes[@]}" "$root/fuzz/onnx_fuzzer.swift" \
    "$out/libEngine.a" "$out/libTrainer.a" "$out/libONNX.a" "$out/libProtobufArena.a" "$out/libConstraints.a" \
    "$out/onnx.pb-c.o" "$out/engine_kernels.o" "$out/kernels.o" \
    -use-ld=lld -lprotobuf-c -lopenblas -lz -o "$out/onnx_fuzzer"
[[ "${1:-}" == "--build-only" ]] && exit 0

NAS_FUZZ_WRITE_SEEDS="$corpus" "$out/onnx_fuzzer"
python="${NAS_TEST_PYTHON:-$root/.venv/bin/python}"
if [[ -x "$python" ]] && "$python" -c 'import onnx' 2>/dev/null; then
    "$python" "$root/fuzz/onnx_seeds.py" "$corpus"
else
    echo "no Python with onnx ($python): seeding with OnnxExport's models only (run scripts/bootstrap.sh)" >&2
fi
seconds="${1:-60}"
shift || true
# -malloc_limit_mb: a single allocation above 2 GiB is a finding (a hostile file must not make us ask for it);
# -rss_limit_mb bounds the whole process; -timeout flags one input that takes more than 10 s.
# The Swift runtime's own backtracer reads memory ASan flags: let libFuzzer print the trap instead.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"
"$out/onnx_fuzzer" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/" "$@" "$corpus"
