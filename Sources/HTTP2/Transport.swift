import Foundation
internal import COpenSSL
internal import CSystem

/// What one step of a transport came to.
enum TransportStatus: Equatable {
    /// Moved this many bytes (0 for a finished handshake).
    case done(Int)
    /// Nothing moved: try again when the socket is writable (`true`) or readable (`false`).
    case wouldBlock(writable: Bool)
    /// The peer closed the connection.
    case ended
    /// The connection failed, for this reason.
    case failed(String)
    /// The TLS handshake was refused (a certificate, a CA or the protocol does not fit): calling again cannot help.
    case refused(String)
}

/// How a session's bytes cross its socket: as they are (h2c), or through TLS on the same non-blocking socket.
/// `Session` has one I/O path and asks this for each read, write and handshake step; only this enum and
/// `TLSConnection` know which kind of socket it is.
enum Transport {
    case plain
    case tls(TLSConnection)

    /// One step of the handshake; `.done` at once for h2c.
    func handshake() -> TransportStatus {
        switch self {
        case .plain: .done(0)
        case .tls(let connection): connection.handshake()
        }
    }

    /// Reads what is there, up to the buffer's size.
    func receive(_ fd: Int32, into buffer: UnsafeMutableBufferPointer<UInt8>) -> TransportStatus {
        switch self {
        case .tls(let connection): return connection.receive(into: buffer)
        case .plain:
            let count = recv(fd, buffer.baseAddress, buffer.count, 0)
            if count > 0 { return .done(count) }
            if count == 0 { return .ended }
            let error = nas_errno()
            if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { return .wouldBlock(writable: false) }
            return .failed(String(cString: strerror(error)))
        }
    }

    /// Writes as much of `bytes` as the socket takes.
    func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> TransportStatus {
        switch self {
        case .tls(let connection): return connection.send(bytes)
        case .plain:
            while true {
                let written = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                if written >= 0 { return .done(written) }
                let error = nas_errno()
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock(writable: true) }
                return .failed(String(cString: strerror(error)))
            }
        }
    }

    /// Writes as much of `pieces` as the socket takes, in order, with one `sendmsg` (h2c only).
    static func sendPieces(_ fd: Int32, _ pieces: UnsafeMutableBufferPointer<iovec>) -> TransportStatus {
        // At most IOV_MAX (1024 on Linux) pieces per call, the rest at the next; a batch holds far fewer (16 KiB
        // DATA frames, 256 KiB a batch).
        var message = msghdr()
        message.msg_iov = pieces.baseAddress
        message.msg_iovlen = min(pieces.count, 1024)
        while true {
            let written = sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
            if written >= 0 { return .done(written) }
            let error = nas_errno()
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock(writable: true) }
            return .failed(String(cString: strerror(error)))
        }
    }

    /// Whether bytes already read from the socket wait in TLS's buffers: epoll will not report them.
    var hasBufferedInput: Bool {
        if case .tls(let connection) = self { return connection.hasBufferedInput }
        return false
    }

    /// Says goodbye before the socket closes (a TLS close_notify, best effort: the socket is non-blocking).
    func shutdown() {
        if case .tls(let connection) = self { connection.shutdown() }
    }
}

/// One TLS connection over a non-blocking socket: OpenSSL's SSL, driven by the event loop (each call returns
/// `wouldBlock` with the direction OpenSSL waits for, instead of blocking). The handshake ends only with ALPN `h2`
/// agreed, and a client only accepts a certificate for the host it dialled.
final class TLSConnection {
    private let ssl: OpaquePointer
    private let role: TLSContext.Role
    /// The peer, for messages: the host a client dialled, or "the client".
    private let peer: String

    /// A connection on `fd`: a client's checks the server's certificate against `host` (a name or an IP literal).
    init?(context: TLSContext, fd: Int32, host: String?) {
        guard let ssl = SSL_new(context.context) else { return nil }
        self.ssl = ssl
        role = context.role
        peer = host ?? "the client"
        nas_tls_set_modes(ssl)
        // Read what the socket has in one read(2) rather than a record header and then its body: fewer syscalls.
        SSL_set_read_ahead(ssl, 1)
        guard SSL_set_fd(ssl, fd) == 1 else { return nil }
        switch context.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if let host {
                if Self.isIPLiteral(host) {
                    guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else { return nil }
                } else {
                    guard SSL_set1_host(ssl, host) == 1 else { return nil }
                    nas_tls_set_server_name(ssl, host)
                }
            }
        }
    }

    deinit {
        SSL_free(ssl)
    }

    private static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    func handshake() -> TransportStatus {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        guard result == 1 else { return failure(result, during: "handshake") }
        var protocolName: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &protocolName, &length)
        let agreed = protocolName.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(length)), as: UTF8.self) }
        guard agreed == "h2" else {
            return .refused(role == .client
                ? "TLS: the server at \(peer) did not agree on HTTP/2 (ALPN h2; it answered "
                    + (agreed.map { "'\($0)'" } ?? "no protocol") + "): it is not an HTTP/2 server over TLS"
                : "TLS: the client did not offer HTTP/2 (ALPN h2)")
        }
        return .done(0)
    }

    /// Reads records until the buffer is full or TLS has nothing buffered, so that nghttp2 gets large batches
    /// without a read(2) that can only say EAGAIN.
    func receive(into buffer: UnsafeMutableBufferPointer<UInt8>) -> TransportStatus {
        var filled = 0
        while filled < buffer.count && (filled == 0 || hasBufferedInput) {
            ERR_clear_error()
            let count = SSL_read(ssl, buffer.baseAddress! + filled, Int32(clamping: buffer.count - filled))
            if count > 0 {
                filled += Int(count)
                continue
            }
            let status = failure(count, during: "read")
            // Bytes already read are handed over first; an end or a failure shows again at the next read.
            return filled > 0 ? .done(filled) : status
        }
        return .done(filled)
    }

    func send(_ bytes: UnsafeRawBufferPointer) -> TransportStatus {
        guard !bytes.isEmpty else { return .done(0) }
        ERR_clear_error()
        let written = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        return written > 0 ? .done(Int(written)) : failure(written, during: "write")
    }

    var hasBufferedInput: Bool { SSL_has_pending(ssl) == 1 }

    func shutdown() {
        ERR_clear_error()
        if SSL_is_init_finished(ssl) == 1 { SSL_shutdown(ssl) }
        ERR_clear_error()
    }

    /// What a failed SSL call means: wait for the socket, the peer's end, or a failure in words with advice.
    private func failure(_ result: Int32, during operation: String) -> TransportStatus {
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ: return .wouldBlock(writable: false)
        case SSL_ERROR_WANT_WRITE: return .wouldBlock(writable: true)
        case SSL_ERROR_ZERO_RETURN: return .ended
        case SSL_ERROR_SYSCALL:
            let error = nas_errno()
            ERR_clear_error()
            if error == 0 || error == ECONNRESET || error == EPIPE {
                return operation == "handshake"
                    ? .failed("TLS: the peer closed the connection during the handshake" + (role == .client
                        ? " (does \(peer) speak TLS? an h2c server is called with http://)" : ""))
                    : .ended
            }
            return .failed("TLS \(operation): \(String(cString: strerror(error)))")
        default:
            let reason = "TLS \(operation) failed: \(explain())"
            return operation == "handshake" ? .refused(reason) : .failed(reason)
        }
    }

    /// The error queue in words, with what to do for the failures users meet.
    private func explain() -> String {
        let first = ERR_peek_error()
        let reason = ERR_GET_REASON(first)
        var text = TLSContext.drainErrors()
        switch Int32(reason) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            let detail = String(cString: X509_verify_cert_error_string(Int(SSL_get_verify_result(ssl))))
            text += " (\(detail)): " + (role == .client
                ? "the certificate of \(peer) is not signed by the CA of --tls-ca or does not name \(peer)"
                : "the client's certificate is not signed by the CA of --tls-client-ca")
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED where role == .client,
             SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE where role == .client && !hasCertificate:
            text += ": the server requires a client certificate: pass --tls-client-cert FILE and --tls-client-key FILE"
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA where role == .client, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE where role == .client:
            text += ": the server refused this client certificate (--tls-client-cert): it is not signed by the CA the "
                + "server trusts (its --tls-client-ca)"
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
            text += ": this server requires client certificates (--tls-client-ca)"
        case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
            text += ": the server does not speak HTTP/2 over TLS (ALPN h2)"
        case SSL_R_WRONG_VERSION_NUMBER, SSL_R_HTTP_REQUEST:
            text += role == .client
                ? ": \(peer) does not speak TLS here (an h2c server is called with http://)"
                : ": the client does not speak TLS (call this server with https://)"
        default:
            break
        }
        return text
    }

    /// Whether this side presents a certificate.
    private var hasCertificate: Bool { SSL_get_certificate(ssl) != nil }
}
