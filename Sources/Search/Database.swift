internal import CSQLite
import Foundation

/// A value bound to or read from a SQL statement.
enum SQLValue: Hashable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    var int: Int? {
        if case .integer(let value) = self { return Int(value) }
        return nil
    }
    var double: Double? {
        switch self {
        case .real(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }
    var string: String? {
        if case .text(let value) = self { return value }
        return nil
    }
}

/// One SQLite connection; the one owner of its handle.
final class Database {
    private let handle: OpaquePointer
    let path: String

    /// Opens (creating when `create`) the database at `path`, in WAL mode with a busy timeout; with `readOnly`,
    /// for reading only, changing nothing (no journal mode is set), so that a job on a read-only folder reads.
    init(path: String, create: Bool, readOnly: Bool = false) throws {
        var pointer: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | (create ? SQLITE_OPEN_CREATE : 0)
            | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &pointer, flags, nil)
        guard status == SQLITE_OK, let pointer else {
            let message = pointer.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(status))
            if let pointer { sqlite3_close(pointer) }
            throw JobStoreError.database(path, message)
        }
        handle = pointer
        self.path = path
        sqlite3_busy_timeout(handle, 5000)
        if readOnly { return }
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=NORMAL")
    }

    deinit {
        sqlite3_close(handle)
    }

    /// Runs one statement that returns no rows of interest.
    func execute(_ sql: String, _ parameters: [SQLValue] = []) throws {
        _ = try query(sql, parameters)
    }

    /// Runs one statement and returns its rows.
    func query(_ sql: String, _ parameters: [SQLValue] = []) throws -> [[SQLValue]] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw JobStoreError.database(path, lastError)
        }
        defer { sqlite3_finalize(statement) }
        for (offset, parameter) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch parameter {
            case .null: status = sqlite3_bind_null(statement, index)
            case .integer(let value): status = sqlite3_bind_int64(statement, index, value)
            case .real(let value): status = sqlite3_bind_double(statement, index, value)
            case .text(let value): status = nas_sqlite3_bind_text_transient(statement, index, value, -1)
            }
            guard status == SQLITE_OK else { throw JobStoreError.database(path, lastError) }
        }
        var rows: [[SQLValue]] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { return rows }
            guard status == SQLITE_ROW else { throw JobStoreError.database(path, lastError) }
            var row: [SQLValue] = []
            for column in 0..<sqlite3_column_count(statement) {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_TEXT: row.append(.text(String(cString: sqlite3_column_text(statement, column))))
                default: row.append(.null)
                }
            }
            rows.append(row)
        }
    }

    /// Runs `body` in one transaction: all of it is written, or none.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// The id of the last inserted row.
    var lastInsertedID: Int { Int(sqlite3_last_insert_rowid(handle)) }

    private var lastError: String { String(cString: sqlite3_errmsg(handle)) }
}
