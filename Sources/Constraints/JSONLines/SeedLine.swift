import Foundation

/// A line in vertex-ai-nas's keyword form, read straight from bytes.
///
/// Logs of millions of trials are almost all flat objects of numbers and booleans; reading those without
/// building a `JSON` tree keeps `nas reward` bound by arithmetic. Anything else (strings, nesting, escapes,
/// unknown keys, repeated keys, NaN) returns nil and goes through the general parser, which also explains errors.
struct SeedLine {
    var accuracy = Double.nan
    var target = Double.nan
    var measured = Double.nan
    var targetMemory = 0.0
    var measuredMemory = 0.0
    var weight = 1.0
    var useHardLimit = true

    private static let keys: [[UInt8]] = [
        "accuracy", "target_latency_or_flops", "measured_latency_or_flops", "target_memory", "measured_memory",
        "weight", "use_hard_limit",
    ].map { Array($0.utf8) }

    static func read(_ bytes: UnsafeBufferPointer<UInt8>) -> SeedLine? {
        var line = SeedLine()
        var seen: UInt8 = 0
        var index = 0
        let count = bytes.count
        @inline(__always) func skipSpace() {
            while index < count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0D { index += 1 }
        }
        skipSpace()
        guard index < count, bytes[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        while true {
            skipSpace()
            guard index < count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            let keyStart = index
            while index < count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") { index += 1 }
            guard index < count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let keyLength = index - keyStart
            index += 1
            var slot = -1
            for (position, key) in keys.enumerated() where key.count == keyLength {
                if key.withUnsafeBufferPointer({ memcmp($0.baseAddress!, bytes.baseAddress! + keyStart, keyLength) }) == 0 {
                    slot = position
                    break
                }
            }
            guard slot >= 0, seen & (1 << slot) == 0 else { return nil }
            seen |= 1 << slot
            skipSpace()
            guard index < count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace()
            guard index < count else { return nil }
            let value: Double
            switch bytes[index] {
            case UInt8(ascii: "t"):
                guard index + 4 <= count, memcmp(bytes.baseAddress! + index, "true", 4) == 0 else { return nil }
                index += 4
                value = 1
            case UInt8(ascii: "f"):
                guard index + 5 <= count, memcmp(bytes.baseAddress! + index, "false", 5) == 0 else { return nil }
                index += 5
                value = 0
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                guard let number = readNumber(bytes, &index) else { return nil }
                value = number
            default:
                return nil
            }
            switch slot {
            case 0: line.accuracy = value
            case 1: line.target = value
            case 2: line.measured = value
            case 3: line.targetMemory = value
            case 4: line.measuredMemory = value
            case 5: line.weight = value
            default: line.useHardLimit = value != 0
            }
            skipSpace()
            guard index < count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "}") else { return nil }
            index += 1
            skipSpace()
            // accuracy, target and measured are required; the rest has defaults.
            guard index == count, seen & 0b111 == 0b111 else { return nil }
            return line
        }
    }

    /// A JSON number with strict grammar, converted by strtod.
    private static func readNumber(_ bytes: UnsafeBufferPointer<UInt8>, _ index: inout Int) -> Double? {
        let start = index
        let count = bytes.count
        var isDigit: Bool { index < count && bytes[index] >= 0x30 && bytes[index] <= 0x39 }
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard isDigit else { return nil }
        if bytes[index] == UInt8(ascii: "0") { index += 1 } else { while isDigit { index += 1 } }
        if index < count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard isDigit else { return nil }
            while isDigit { index += 1 }
        }
        if index < count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard isDigit else { return nil }
            while isDigit { index += 1 }
        }
        let length = index - start
        guard length < 64 else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            memcpy(buffer.baseAddress!, bytes.baseAddress! + start, length)
            buffer[length] = 0
            return strtod(buffer.baseAddress!, nil)
        }
    }
}
