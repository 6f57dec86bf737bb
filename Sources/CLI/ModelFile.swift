import ArgumentParser
import Foundation
import ONNX

/// Reads the bytes of a model file named on the command line, with an error that names the file.
func readModelFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError.badInput("cannot read model file '\(path)': it does not exist or is not readable")
    }
    return Array(data)
}

/// Decodes a model file; a malformed file ends the command with the decoder's explanation.
func loadModel(_ path: String) throws -> OnnxModel {
    do {
        return try OnnxModel(bytes: try readModelFile(path))
    } catch let error as OnnxError {
        throw CLIError.badInput("\(path): \(error)")
    }
}

/// Encodes a value as one line of JSON with sorted keys.
func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
