import Foundation
internal import COpenSSL

/// TLS settings of one side of a connection, as PEM files. A server needs `certificateFile` and `keyFile`; its
/// `caFile`, when set, makes every client present a certificate signed by it. A client checks the server's
/// certificate against `caFile` (the system's trust store when nil) and the host it dialled; its
/// `certificateFile` and `keyFile`, when set, are presented to servers that ask for a client certificate.
public struct TLSConfiguration: Sendable, Equatable {
    /// This side's certificate chain (PEM, leaf first).
    public var certificateFile: String?
    /// The private key of `certificateFile` (PEM).
    public var keyFile: String?
    /// The CA certificates (PEM) the peer's certificate must chain to.
    public var caFile: String?

    /// Settings from PEM files; every one is optional here, `TLSContext` says which its role needs.
    public init(certificateFile: String? = nil, keyFile: String? = nil, caFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.caFile = caFile
    }
}

/// An OpenSSL context for HTTP/2 over TLS: TLS 1.2 or later, ALPN `h2` and nothing else, peers verified. Made
/// once from files (every file is read and checked here, so a bad one is a clear error at start-up, not at the
/// first call) and shared by every connection of a server or a client.
public final class TLSContext: @unchecked Sendable {
    /// Which end of connections it makes.
    enum Role {
        case server
        case client
    }

    let role: Role
    /// The SSL_CTX; immutable once made, which is what OpenSSL needs to share it between threads.
    let context: OpaquePointer

    /// A server's context: its certificate and key, and with `caFile` the CA every client's certificate must
    /// chain to.
    public convenience init(server configuration: TLSConfiguration) throws(HTTP2Error) {
        guard let certificate = configuration.certificateFile, let key = configuration.keyFile else {
            throw HTTP2Error(.invalidConfiguration,
                             "a TLS server needs a certificate and its key: pass --tls-cert FILE and --tls-key FILE")
        }
        try self.init(role: .server, certificate: (certificate, key), ca: configuration.caFile)
    }

    /// A client's context: the CA servers' certificates must chain to (the system's trust store when nil), and
    /// the certificate presented to servers that require one.
    public convenience init(client configuration: TLSConfiguration) throws(HTTP2Error) {
        var certificate: (String, String)?
        switch (configuration.certificateFile, configuration.keyFile) {
        case (nil, nil): certificate = nil
        case (let file?, let key?): certificate = (file, key)
        default:
            throw HTTP2Error(.invalidConfiguration,
                             "a TLS client certificate needs its key: pass --tls-client-cert and --tls-client-key together")
        }
        try self.init(role: .client, certificate: certificate, ca: configuration.caFile)
    }

    private init(role: Role, certificate: (file: String, key: String)?, ca: String?) throws(HTTP2Error) {
        ERR_clear_error()
        guard let context = SSL_CTX_new(role == .server ? TLS_server_method() : TLS_client_method()) else {
            throw HTTP2Error(.invalidConfiguration, "cannot make a TLS context: \(TLSContext.drainErrors())")
        }
        self.role = role
        self.context = context
        nas_tls_set_min_tls12(context)
        nas_tls_ignore_unexpected_eof(context)
        if let (file, key) = certificate {
            try Self.readable(file, "certificate")
            try Self.readable(key, "private key")
            guard SSL_CTX_use_certificate_chain_file(context, file) == 1 else {
                throw HTTP2Error(.invalidConfiguration,
                                 "cannot load the TLS certificate \(file) (PEM expected): \(Self.drainErrors())")
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1,
                  SSL_CTX_check_private_key(context) == 1 else {
                if ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH {
                    ERR_clear_error()
                    throw HTTP2Error(.invalidConfiguration,
                                     "the TLS private key \(key) does not belong to the certificate \(file)")
                }
                throw HTTP2Error(.invalidConfiguration,
                                 "cannot load the TLS private key \(key) (PEM expected): \(Self.drainErrors())")
            }
        }
        if let ca {
            try Self.readable(ca, "CA file")
            guard SSL_CTX_load_verify_locations(context, ca, nil) == 1 else {
                throw HTTP2Error(.invalidConfiguration,
                                 "cannot load the TLS CA certificates \(ca) (PEM expected): \(Self.drainErrors())")
            }
        } else if role == .client {
            SSL_CTX_set_default_verify_paths(context)
        }
        switch role {
        case .server:
            nas_tls_server_require_h2(context)
            if let ca {
                // The CA names the server sends, so a client with several certificates picks the right one.
                if let names = SSL_load_client_CA_file(ca) { SSL_CTX_set_client_CA_list(context, names) }
                SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
            }
        case .client:
            guard nas_tls_client_offer_h2(context) == 0 else {
                throw HTTP2Error(.invalidConfiguration, "cannot offer ALPN h2: \(Self.drainErrors())")
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        }
        ERR_clear_error()
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// A file that cannot be read gets a message naming it, not OpenSSL's "system library" error.
    private static func readable(_ path: String, _ what: String) throws(HTTP2Error) {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw HTTP2Error(.invalidConfiguration, "cannot read the TLS \(what) \(path): no such readable file")
        }
    }

    /// The thread's OpenSSL error queue in words, emptied; the one place OpenSSL's error codes become text.
    static func drainErrors() -> String {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(ERR_reason_error_string(code).map { String(cString: $0) }
                ?? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return reasons.isEmpty ? "unknown OpenSSL error" : reasons.joined(separator: "; ")
    }
}
