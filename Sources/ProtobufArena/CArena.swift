// ProtobufArena owns the C memory of a protobuf-c message tree while it is packed: the structs, arrays, strings and
// bytes that the generated `*__pack` functions read, allocated zeroed and freed together when the arena goes. The
// ONNX model's encoder (Sources/ONNX) and the fleet's messages (Sources/Fleet) both fill protobuf-c structs this
// way, so the one arena lives here, below both. It depends on CProtobufC only, for `ProtobufCBinaryData`; its API
// is `package`, since C types never reach the public API.
package import CProtobufC

#if canImport(Glibc)
    import Glibc
#endif

/// Owns the C memory of a message tree being encoded; frees it all at once when it goes.
///
/// Every block is zeroed (so a struct's fields not set stay 0 / NULL, as protobuf-c's `*__init` leaves them) and
/// never NULL, even for zero elements: protobuf-c copies `len` bytes from `data` with memcpy, which must not be
/// handed NULL. Not thread-safe: one arena per message being packed.
package final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    /// An empty arena.
    package init() {}

    /// Zeroed room for `count` values of `T` (at least one).
    package func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A NUL-terminated copy of `text`.
    package func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(text)!
        blocks.append(UnsafeMutableRawPointer(copy))
        return copy
    }

    /// A copy of `values` as protobuf-c's `bytes` field.
    package func bytes(_ values: [UInt8]) -> ProtobufCBinaryData {
        let pointer = allocate(UInt8.self, count: values.count)
        values.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { pointer.update(from: base, count: buffer.count) }
        }
        return ProtobufCBinaryData(len: values.count, data: pointer)
    }

    /// A C array holding `values`: a repeated scalar field, or the pointers of a repeated message field.
    package func array<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = allocate(T.self, count: values.count)
        for (index, value) in values.enumerated() { (pointer + index).initialize(to: value) }
        return pointer
    }

    /// A repeated message field of `count` messages, each allocated here and filled by `make` (which calls the
    /// message's `*__init` first); nil when `count` is 0, as protobuf-c leaves an empty repeated field.
    package func messages<C>(_ count: Int, _ make: (Int, UnsafeMutablePointer<C>) -> Void)
        -> UnsafeMutablePointer<UnsafeMutablePointer<C>?>?
    {
        guard count > 0 else { return nil }
        let array = allocate(UnsafeMutablePointer<C>?.self, count: count)
        for index in 0..<count {
            let element = allocate(C.self)
            make(index, element)
            array[index] = element
        }
        return array
    }

    deinit {
        for block in blocks { free(block) }
    }
}
