internal import CCurl
import Foundation
import Synchronization

/// One HTTP exchange's result, as the storage client needs it.
struct StorageHTTPResponse: Sendable {
    var status: Int
    /// Header names in lower case; the last value wins.
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body.prefix(2000), as: UTF8.self) }
}

/// A blocking HTTP/1.1 client over libcurl easy handles, for the GCS JSON API and the token endpoints.
///
/// Handles are kept in a small pool and reset between requests, so connections (and TLS sessions) are reused
/// across calls; each handle is used by one thread at a time.
final class StorageHTTP: Sendable {
    private let pool = Mutex<[StorageCurlHandle]>([])
    /// Per-request deadline.
    let timeoutMilliseconds: Int

    init(timeoutMilliseconds: Int = 30_000) {
        StorageCurlHandle.globalInit()
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Performs one request; a transport failure (no answer) throws ``StorageError/transport(_:_:)``.
    func perform(
        _ method: String, _ url: String, headers: [String] = [], body: [UInt8]? = nil, what: String
    ) throws -> StorageHTTPResponse {
        let handle = pool.withLock { $0.popLast() } ?? StorageCurlHandle()
        let result = Result {
            try handle.perform(
                method, url, headers: headers, body: body, timeoutMilliseconds: timeoutMilliseconds, what: what)
        }
        pool.withLock { if $0.count < 8 { $0.append(handle) } }
        return try result.get()
    }
}

/// The owner of one `CURL *`.
final class StorageCurlHandle: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    private static let initialized: Bool = {
        curl_global_init(3)  // CURL_GLOBAL_ALL: a macro Swift does not import
        return true
    }()

    static func globalInit() { _ = initialized }

    init() {
        Self.globalInit()
        handle = curl_easy_init()!
    }

    deinit { curl_easy_cleanup(handle) }

    /// Accumulates the response while curl calls back.
    fileprivate final class Sink {
        var body = [UInt8]()
        var headers = [String: String]()
    }

    func perform(
        _ method: String, _ url: String, headers: [String], body: [UInt8]?, timeoutMilliseconds: Int, what: String
    ) throws -> StorageHTTPResponse {
        curl_easy_reset(handle)
        let sink = Sink()
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for header in headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        var code = CURLE_OK
        func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }
        set(nas_curl_easy_setopt_string(handle, CURLOPT_URL, url))
        set(nas_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(nas_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMilliseconds))
        set(nas_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, min(timeoutMilliseconds, 10_000)))
        set(nas_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, list))
        set(nas_curl_easy_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, storageCurlWrite))
        set(nas_curl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer))
        set(nas_curl_easy_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, storageCurlHeader))
        set(nas_curl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, sinkPointer))
        if method != "GET" && method != "POST" {
            set(nas_curl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method))
        }
        var payload = body ?? (method == "POST" ? [] : nil)
        let performed: CURLcode = {
            guard code == CURLE_OK else { return code }
            guard payload != nil else { return curl_easy_perform(handle) }
            return payload!.withUnsafeMutableBytes { raw in
                // A non-null pointer even for an empty body, or curl would read the body from stdin.
                var empty: UInt8 = 0
                return withUnsafeMutablePointer(to: &empty) { fallback in
                    let pointer = raw.baseAddress ?? UnsafeMutableRawPointer(fallback)
                    var result = nas_curl_easy_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                    if result == CURLE_OK { result = nas_curl_easy_setopt_pointer(handle, CURLOPT_POSTFIELDS, pointer) }
                    if result == CURLE_OK { result = curl_easy_perform(handle) }
                    return result
                }
            }
        }()
        payload = nil
        guard performed == CURLE_OK else {
            throw StorageError.transport(what, "\(String(cString: curl_easy_strerror(performed))) (\(url))")
        }
        var status = 0
        _ = nas_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return StorageHTTPResponse(status: status, headers: sink.headers, body: sink.body)
    }

    fileprivate static func sink(_ user: UnsafeMutableRawPointer?) -> Sink {
        Unmanaged<Sink>.fromOpaque(user!).takeUnretainedValue()
    }

    fileprivate static func appendBody(_ user: UnsafeMutableRawPointer?, _ bytes: UnsafeRawBufferPointer) {
        sink(user).body.append(contentsOf: bytes)
    }

    fileprivate static func appendHeader(_ user: UnsafeMutableRawPointer?, _ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self)
        let sink = sink(user)
        if line.hasPrefix("HTTP/") {
            sink.headers = [:]  // a new response (after a 100 Continue or a redirect)
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        sink.headers[name] = value
    }
}

private func storageCurlWrite(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?
) -> Int {
    let total = size * count
    if let data { StorageCurlHandle.appendBody(user, UnsafeRawBufferPointer(start: data, count: total)) }
    return total
}

private func storageCurlHeader(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?
) -> Int {
    let total = size * count
    if let data { StorageCurlHandle.appendHeader(user, UnsafeRawBufferPointer(start: data, count: total)) }
    return total
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as GCS wants object names in paths.
func storagePercentEncode(_ text: String) -> String {
    var result = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            result.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            result += String(format: "%%%02X", byte)
        }
    }
    return result
}
