import Foundation
internal import System
import Synchronization

/// A job directory in a Google Cloud Storage bucket, spoken to through the GCS JSON API over libcurl.
///
/// Writes are multipart uploads (`uploadType=multipart`), because the preconditions
/// (`ifGenerationMatch=0` for create-if-absent, `ifGenerationMatch=G` for compare-and-swap) are honoured on
/// those by GCS and by `fake-gcs-server` alike; a 412 answer means another writer won. Requests that get 429,
/// a 5xx or no answer are retried with exponential backoff and jitter (``GCSStorage/RetryPolicy``).
public final class GCSStorage: ObjectStorage {
    /// Where and how to reach GCS.
    public struct Configuration: Sendable {
        /// The API root, without a trailing `/`: `https://storage.googleapis.com`, or an emulator's URL.
        public var endpoint: String
        /// How requests are authorized.
        public var credentials: Credentials
        /// Retries of overloaded, failing or unreachable servers.
        public var retry: RetryPolicy
        /// Objects per page when listing (GCS allows at most 1000); small values exercise paging.
        public var pageSize: Int
        /// Deadline of one request.
        public var requestTimeout: Duration

        /// A configuration with the defaults: 1000 objects per page, 30 s per request, ``RetryPolicy/standard``.
        public init(
            endpoint: String = "https://storage.googleapis.com", credentials: Credentials,
            retry: RetryPolicy = .standard, pageSize: Int = 1000,
            requestTimeout: Duration = .seconds(30)
        ) {
            var endpoint = endpoint
            while endpoint.hasSuffix("/") { endpoint.removeLast() }
            self.endpoint = endpoint
            self.credentials = credentials
            self.retry = retry
            self.pageSize = max(1, min(pageSize, 1000))
            self.requestTimeout = requestTimeout
        }

        /// Google's usual order: `STORAGE_EMULATOR_HOST` (no auth, like Google's client libraries), an access
        /// token in `GOOGLE_OAUTH_ACCESS_TOKEN` (or `CLOUDSDK_AUTH_ACCESS_TOKEN`), Application Default
        /// Credentials of the `authorized_user` kind (`GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's
        /// `application_default_credentials.json`), then the GCE metadata server (`GCE_METADATA_HOST` overrides
        /// its address).
        public static func fromEnvironment(_ environment: [String: String]) throws -> Configuration {
            if let host = environment["STORAGE_EMULATOR_HOST"], !host.isEmpty {
                let endpoint = host.contains("://") ? host : "http://" + host
                return Configuration(endpoint: endpoint, credentials: .none)
            }
            for name in ["GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN"] {
                if let token = environment[name], !token.isEmpty {
                    return Configuration(credentials: .accessToken(token))
                }
            }
            if let credentials = try Credentials.applicationDefault(environment) {
                return Configuration(credentials: credentials)
            }
            let host = environment["GCE_METADATA_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "metadata.google.internal"
            return Configuration(credentials: .metadataServer(host: host))
        }
    }

    /// How requests are authorized.
    public enum Credentials: Sendable, Hashable {
        /// No `Authorization` header (emulators).
        case none
        /// A ready OAuth2 access token (e.g. from `gcloud auth print-access-token`).
        case accessToken(String)
        /// A user's refresh token, exchanged for access tokens at `tokenURI` (gcloud's ADC file).
        case authorizedUser(clientID: String, clientSecret: String, refreshToken: String, tokenURI: String)
        /// The service account of the VM, from the metadata server at `host`.
        case metadataServer(host: String)

        /// Reads the Application Default Credentials file, if there is one; nil when there is none.
        static func applicationDefault(_ environment: [String: String]) throws -> Credentials? {
            let path: String
            if let explicit = environment["GOOGLE_APPLICATION_CREDENTIALS"], !explicit.isEmpty {
                path = explicit
                guard FileManager.default.fileExists(atPath: path) else {
                    throw StorageError.auth("GOOGLE_APPLICATION_CREDENTIALS names '\(path)', which does not exist")
                }
            } else {
                let folder =
                    environment["CLOUDSDK_CONFIG"] ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.config/gcloud")
                path = folder + "/application_default_credentials.json"
                guard FileManager.default.fileExists(atPath: path) else { return nil }
            }
            guard let data = FileManager.default.contents(atPath: path),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else {
                throw StorageError.auth("'\(path)' is not a JSON object; run `gcloud auth application-default login`")
            }
            let kind = object["type"] as? String ?? "(none)"
            guard kind == "authorized_user" else {
                throw StorageError.auth(
                    "'\(path)' holds credentials of type '\(kind)', which this tool does not sign; use "
                        + "`gcloud auth application-default login` (authorized_user) or set GOOGLE_OAUTH_ACCESS_TOKEN")
            }
            guard let clientID = object["client_id"] as? String, let secret = object["client_secret"] as? String,
                let refresh = object["refresh_token"] as? String
            else {
                throw StorageError.auth("'\(path)' lacks client_id, client_secret or refresh_token")
            }
            let uri = object["token_uri"] as? String ?? "https://oauth2.googleapis.com/token"
            return .authorizedUser(clientID: clientID, clientSecret: secret, refreshToken: refresh, tokenURI: uri)
        }
    }

    /// Exponential backoff with jitter for 429, 5xx and transport failures.
    public struct RetryPolicy: Sendable, Hashable {
        /// Attempts in all, the first included.
        public var maxAttempts: Int
        /// The delay before the first retry; it doubles on each retry.
        public var initialDelay: Duration
        /// The longest delay between two attempts.
        public var maxDelay: Duration

        /// Builds a policy.
        public init(maxAttempts: Int, initialDelay: Duration, maxDelay: Duration) {
            self.maxAttempts = max(1, maxAttempts)
            self.initialDelay = initialDelay
            self.maxDelay = maxDelay
        }

        /// 7 attempts, 0.25 s doubling up to 8 s: rides out about half a minute of outage.
        public static let standard = RetryPolicy(
            maxAttempts: 7, initialDelay: .milliseconds(250), maxDelay: .seconds(8))

        /// The delay before retry number `retry` (0-based): half fixed, half random, so that many clients hit by
        /// one outage do not come back in lockstep.
        func delay(beforeRetry retry: Int) -> Double {
            let ceiling = min(maxDelay.inSeconds, initialDelay.inSeconds * pow(2, Double(retry)))
            return ceiling / 2 + Double.random(in: 0...(ceiling / 2))
        }
    }

    /// The bucket name.
    public let bucket: String
    /// The object-name prefix of the job directory, without leading or trailing `/` (may be empty).
    public let prefix: String
    /// The configuration in use.
    public let configuration: Configuration
    private let http: StorageHTTP
    private let tokens: GCSTokenSource

    public var location: String { prefix.isEmpty ? "gs://\(bucket)" : "gs://\(bucket)/\(prefix)" }

    /// A store for `gs://bucket/prefix`.
    public init(bucket: String, prefix: String = "", configuration: Configuration) throws {
        if case .gcs(let checkedBucket, let checkedPrefix) = try StorageLocation.parse("gs://\(bucket)/\(prefix)") {
            self.bucket = checkedBucket
            self.prefix = checkedPrefix
        } else {
            throw StorageError.invalidLocation("gs://\(bucket)/\(prefix)", "not a Cloud Storage URL")
        }
        self.configuration = configuration
        self.http = StorageHTTP(
            timeoutMilliseconds: max(1, Int(configuration.requestTimeout.inSeconds * 1000)))
        self.tokens = GCSTokenSource(configuration.credentials, http: http)
    }

    private func objectName(_ key: String) throws -> String {
        try StorageKey.validate(key)
        return prefix.isEmpty ? key : prefix + "/" + key
    }

    private var objectsURL: String { "\(configuration.endpoint)/storage/v1/b/\(storagePercentEncode(bucket))/o" }

    private func objectURL(_ name: String) -> String { objectsURL + "/" + storagePercentEncode(name) }

    // MARK: ObjectStorage

    public func read(_ key: String) throws -> StoredObject? {
        let name = try objectName(key)
        let what = "reading \(location)/\(key)"
        let response = try send("GET", objectURL(name) + "?alt=media", what: what)
        switch response.status {
        case 200:
            guard let text = response.headers["x-goog-generation"], let generation = Int64(text) else {
                throw StorageError.http(what, status: 200, "the answer lacks the x-goog-generation header")
            }
            return StoredObject(data: response.body, generation: generation)
        case 404: return nil
        default: throw failure(what, response)
        }
    }

    @discardableResult
    public func write(_ key: String, data: [UInt8]) throws -> Int64 {
        let what = "writing \(location)/\(key)"
        guard let generation = try upload(key, data: data, precondition: nil, what: what) else {
            throw StorageError.http(what, status: 412, "a precondition failed on an unconditional write")
        }
        return generation
    }

    public func exists(_ key: String) throws -> Bool {
        let name = try objectName(key)
        let what = "checking \(location)/\(key)"
        let response = try send("GET", objectURL(name) + "?fields=name", what: what)
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw failure(what, response)
        }
    }

    public func list(prefix listPrefix: String) throws -> [String] {
        try StorageKey.validatePrefix(listPrefix)
        let root = prefix.isEmpty ? "" : prefix + "/"
        let what = "listing \(location)/\(listPrefix)"
        var keys = [String]()
        var pageToken: String?
        repeat {
            var url =
                objectsURL + "?prefix=\(storagePercentEncode(root + listPrefix))&maxResults=\(configuration.pageSize)"
            url += "&fields=\(storagePercentEncode("items(name),nextPageToken"))"
            if let pageToken { url += "&pageToken=\(storagePercentEncode(pageToken))" }
            let response = try send("GET", url, what: what)
            guard response.status == 200 else {
                if response.status == 404 { throw StorageError.bucketNotFound(bucket) }
                throw failure(what, response)
            }
            guard let page = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
                throw StorageError.http(what, status: 200, "the listing is not a JSON object: \(response.text)")
            }
            for item in page["items"] as? [[String: Any]] ?? [] {
                guard let name = item["name"] as? String, name.hasPrefix(root) else { continue }
                let key = String(name.dropFirst(root.count))
                if !key.isEmpty && !key.hasSuffix("/") { keys.append(key) }  // skip "folder" placeholders
            }
            pageToken = (page["nextPageToken"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        } while pageToken != nil
        return keys.sorted()
    }

    public func delete(_ key: String) throws {
        let name = try objectName(key)
        let what = "deleting \(location)/\(key)"
        let response = try send("DELETE", objectURL(name), what: what)
        guard [200, 204, 404].contains(response.status) else { throw failure(what, response) }
    }

    public func createIfAbsent(_ key: String, data: [UInt8]) throws -> Int64? {
        try upload(key, data: data, precondition: 0, what: "creating \(location)/\(key)")
    }

    public func compareAndSwap(_ key: String, data: [UInt8], ifGeneration generation: Int64) throws -> Int64? {
        try upload(key, data: data, precondition: generation, what: "replacing \(location)/\(key)")
    }

    // MARK: requests

    /// A multipart upload; nil when the `ifGenerationMatch` precondition failed (412).
    private func upload(_ key: String, data: [UInt8], precondition: Int64?, what: String) throws -> Int64? {
        let name = try objectName(key)
        let boundary = "nas-\(UInt64.random(in: 0...UInt64.max))-\(UInt64.random(in: 0...UInt64.max))"
        let contentType = key.hasSuffix(".json") ? "application/json" : "application/octet-stream"
        let metadata = try JSONSerialization.data(withJSONObject: ["name": name, "contentType": contentType])
        var body = Array("--\(boundary)\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n".utf8)
        body += metadata
        body += Array("\r\n--\(boundary)\r\ncontent-type: \(contentType)\r\n\r\n".utf8)
        body += data
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        var url = "\(configuration.endpoint)/upload/storage/v1/b/\(storagePercentEncode(bucket))/o?uploadType=multipart"
        if let precondition { url += "&ifGenerationMatch=\(precondition)" }
        let response = try send(
            "POST", url, headers: ["Content-Type: multipart/related; boundary=\(boundary)"], body: body, what: what)
        switch response.status {
        case 200:
            guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                let text = object["generation"] as? String, let generation = Int64(text)
            else {
                throw StorageError.http(what, status: 200, "the answer has no generation: \(response.text)")
            }
            return generation
        case 412: return nil
        case 404: throw StorageError.bucketNotFound(bucket)
        default: throw failure(what, response)
        }
    }

    /// Sends with retries of 429, 5xx and transport failures, and one token refresh on 401.
    private func send(
        _ method: String, _ url: String, headers: [String] = [], body: [UInt8]? = nil, what: String
    ) throws -> StorageHTTPResponse {
        var attempt = 0
        var refreshed = false
        while true {
            var all = headers
            do {
                if let token = try tokens.token(what: what) { all.append("Authorization: Bearer \(token)") }
                let response = try http.perform(method, url, headers: all, body: body, what: what)
                if response.status == 401 && !refreshed && tokens.canRefresh {
                    refreshed = true
                    tokens.invalidate()
                    continue
                }
                let transient = response.status == 429 || response.status == 408 || response.status >= 500
                if !transient || attempt + 1 >= configuration.retry.maxAttempts { return response }
            } catch let error as StorageError where error.isTransient {
                if attempt + 1 >= configuration.retry.maxAttempts { throw error }
            }
            Thread.sleep(forTimeInterval: configuration.retry.delay(beforeRetry: attempt))
            attempt += 1
        }
    }

    private func failure(_ what: String, _ response: StorageHTTPResponse) -> StorageError {
        let detail = Self.errorMessage(response)
        switch response.status {
        case 401, 403: return StorageError.permissionDenied(what, status: response.status, detail)
        case 429, 408, 500...: return StorageError.http(what, status: response.status, detail, transient: true)
        default: return StorageError.http(what, status: response.status, detail)
        }
    }

    /// The `error.message` of a JSON API error body, else the start of the body.
    static func errorMessage(_ response: StorageHTTPResponse) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let error = object["error"] as? [String: Any], let message = error["message"] as? String
        {
            return message
        }
        return response.text
    }
}

/// Access tokens for the configured credentials, cached until a minute before they expire.
final class GCSTokenSource: Sendable {
    private let credentials: GCSStorage.Credentials
    private let http: StorageHTTP
    private let cache = Mutex<(token: String, expiry: Date)?>(nil)

    init(_ credentials: GCSStorage.Credentials, http: StorageHTTP) {
        self.credentials = credentials
        self.http = http
    }

    var canRefresh: Bool {
        switch credentials {
        case .authorizedUser, .metadataServer: return true
        case .none, .accessToken: return false
        }
    }

    func invalidate() { cache.withLock { $0 = nil } }

    /// The token to send, or nil for no `Authorization` header.
    func token(what: String) throws -> String? {
        switch credentials {
        case .none: return nil
        case .accessToken(let token): return token
        case .authorizedUser, .metadataServer:
            if let cached = cache.withLock({ $0 }), cached.expiry.timeIntervalSinceNow > 60 { return cached.token }
            let fresh = try fetch()
            cache.withLock { $0 = fresh }
            return fresh.token
        }
    }

    private func fetch() throws -> (token: String, expiry: Date) {
        let response: StorageHTTPResponse
        let source: String
        switch credentials {
        case .authorizedUser(let clientID, let secret, let refreshToken, let uri):
            source = "the token endpoint \(uri)"
            let form = [
                ("grant_type", "refresh_token"), ("client_id", clientID), ("client_secret", secret),
                ("refresh_token", refreshToken),
            ].map { "\($0.0)=\(storagePercentEncode($0.1))" }.joined(separator: "&")
            response = try http.perform(
                "POST", uri, headers: ["Content-Type: application/x-www-form-urlencoded"], body: Array(form.utf8),
                what: "exchanging the refresh token")
        case .metadataServer(let host):
            source = "the metadata server \(host)"
            let url = "http://\(host)/computeMetadata/v1/instance/service-accounts/default/token"
            do {
                response = try http.perform(
                    "GET", url, headers: ["Metadata-Flavor: Google"], what: "asking the metadata server")
            } catch {
                throw StorageError.auth(
                    "no credentials found: not on GCE (\(source) did not answer), no GOOGLE_OAUTH_ACCESS_TOKEN, no "
                        + "application default credentials; run `gcloud auth application-default login` or set "
                        + "STORAGE_EMULATOR_HOST for an emulator")
            }
        case .none, .accessToken:
            preconditionFailure("static credentials are not fetched")
        }
        guard response.status == 200,
            let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let token = object["access_token"] as? String
        else {
            throw StorageError.auth("\(source) answered HTTP \(response.status): \(GCSStorage.errorMessage(response))")
        }
        let lifetime = (object["expires_in"] as? NSNumber)?.doubleValue ?? 3600
        return (token, Date().addingTimeInterval(lifetime))
    }
}
