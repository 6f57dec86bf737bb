internal import CCrypto

/// SHA-256: models travel with their hash and workers cache by it. OpenSSL's libcrypto computes it (with the
/// CPU's SHA instructions where there are some): a model is hashed up to three times per evaluation (caller,
/// coordinator, worker), so the hash's speed is part of every evaluation's overhead.
package enum SHA256 {
    /// The 32-byte digest of `data`.
    package static func hash(_ data: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { digest, count in
            let status = data.withUnsafeBytes { nas_sha256($0.baseAddress, $0.count, digest.baseAddress) }
            precondition(status == 1, "libcrypto's SHA-256 failed")
            count = 32
        }
    }

    /// Lower-case hex of bytes: the cache's file names and what users read.
    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return out
    }
}
