import Synchronization

/// A job directory in memory, with the semantics of the real backends (atomic create-if-absent and
/// compare-and-swap, generations that change on every write): for unit tests of code built on the exchange.
public final class InMemoryStorage: ObjectStorage {
    private struct State {
        var objects: [String: StoredObject] = [:]
        var nextGeneration: Int64 = 1
    }

    private let state = Mutex(State())
    /// The name of the store in messages.
    public let location: String

    /// An empty store; `location` names it in messages.
    public init(location: String = "memory://job") {
        self.location = location
    }

    public func read(_ key: String) throws -> StoredObject? {
        try StorageKey.validate(key)
        return state.withLock { $0.objects[key] }
    }

    @discardableResult
    public func write(_ key: String, data: [UInt8]) throws -> Int64 {
        try StorageKey.validate(key)
        return state.withLock { Self.put(&$0, key, data) }
    }

    public func exists(_ key: String) throws -> Bool {
        try read(key) != nil
    }

    public func list(prefix: String) throws -> [String] {
        try StorageKey.validatePrefix(prefix)
        return state.withLock { $0.objects.keys.filter { $0.hasPrefix(prefix) }.sorted() }
    }

    public func delete(_ key: String) throws {
        try StorageKey.validate(key)
        state.withLock { _ = $0.objects.removeValue(forKey: key) }
    }

    public func createIfAbsent(_ key: String, data: [UInt8]) throws -> Int64? {
        try StorageKey.validate(key)
        return state.withLock { $0.objects[key] == nil ? Self.put(&$0, key, data) : nil }
    }

    public func compareAndSwap(_ key: String, data: [UInt8], ifGeneration generation: Int64) throws -> Int64? {
        try StorageKey.validate(key)
        return state.withLock { $0.objects[key]?.generation == generation ? Self.put(&$0, key, data) : nil }
    }

    private static func put(_ state: inout State, _ key: String, _ data: [UInt8]) -> Int64 {
        let generation = state.nextGeneration
        state.nextGeneration += 1
        state.objects[key] = StoredObject(data: data, generation: generation)
        return generation
    }
}
