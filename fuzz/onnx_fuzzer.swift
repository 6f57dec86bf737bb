// libFuzzer harness of the ONNX import: the bytes of a hostile or corrupt model.onnx go through exactly what
// `nas infer`, `nas measure`, `nas flops` and the worker's native runner do with a file: decode it
// (`OnnxModel(bytes:)`), count its FLOPs (`OnnxFlops.count`), plan it (`OnnxEngine(model:)`) and, when it plans,
// run it once on zeros of its input size. Anything but a result or an `OnnxError` is a bug: a trap (overflow,
// index out of range, force unwrap), an AddressSanitizer report, an allocation above -malloc_limit_mb or a run
// above -timeout. Build and run: fuzz/run-onnx-fuzzer.sh [SECONDS]; seeds: NAS_FUZZ_WRITE_SEEDS=DIR (see there).
import Foundation
import Trainer

/// The largest input one run feeds: bigger inputs are planned (and their memory counted) but not run, so that a
/// legitimately large model does not read as a hang.
private let maximumRunFloats = 1 << 22

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let model: OnnxModel
    do {
        model = try OnnxModel(bytes: bytes)
    } catch {
        expectOnnxError(error)
        return 0
    }
    do {
        _ = try OnnxFlops.count(model)
    } catch {
        expectOnnxError(error)
    }
    do {
        let engine = try OnnxEngine(model: model)
        let inputs = engine.inputs.map(\.count)
        if inputs.reduce(0, +) <= maximumRunFloats {
            _ = try engine.run(inputs: inputs.map { [Float](repeating: 0, count: $0) })
        }
    } catch {
        expectOnnxError(error)
    }
    return 0
}

private func expectOnnxError(_ error: any Error) {
    guard error is OnnxError else { fatalError("not an OnnxError: \(type(of: error)): \(error)") }
}

/// Writes the seed corpus when NAS_FUZZ_WRITE_SEEDS names a folder: real exported models (OnnxExport of the
/// tutorial's CNN family), so that the fuzzer starts from the protobuf layout the tools write.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> CInt {
    guard let folder = ProcessInfo.processInfo.environment["NAS_FUZZ_WRITE_SEEDS"] else { return 0 }
    let architectures: [(name: String, layers: [[Int]], side: Int, batch: Int?)] = [
        ("tutorial-3x3-6", [[3, 3], [3, 6]], 12, nil), ("one-layer", [[3, 2]], 8, 1),
        ("even-kernel", [[2, 4], [4, 2]], 8, nil), ("wide", [[5, 8], [1, 3], [3, 4]], 6, 1),
    ]
    for (name, layers, side, batch) in architectures {
        let architecture = CNNArchitecture(
            layers: layers.map { ConvLayer(kernelSize: $0[0], filters: $0[1]) }, height: side, width: side)
        do {
            let weights = OnnxExport.randomWeights(for: architecture, seed: 7)
            let bytes = try OnnxExport.serialized(architecture: architecture, weights: weights, batch: batch)
            try Data(bytes).write(to: URL(fileURLWithPath: folder).appendingPathComponent("export-\(name).onnx"))
        } catch {
            fatalError("cannot write the seed \(name): \(error)")
        }
    }
    exit(0)
}
