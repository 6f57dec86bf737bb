import Foundation
internal import CNghttp2
internal import CSystem

/// The sockets of the transport: a listening one for servers, a dialled one for clients, all non-blocking and
/// close-on-exec (no socket leaks into a runner's child process).
enum Sockets {
    /// A listening TCP socket on host:port (IPv4 or IPv6 literal, or a name such as `localhost`).
    static func listen(host: String, port: Int) throws(HTTP2Error) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let info = result else {
            throw HTTP2Error(.invalidAddress, "cannot resolve listen address \(host):\(port): "
                + String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, streamFlags, 0)
        guard fd >= 0 else { throw errnoError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = errnoError("bind \(host):\(port)")
            close(fd)
            throw error
        }
        guard Glibc.listen(fd, 1024) == 0 else {
            let error = errnoError("listen")
            close(fd)
            throw error
        }
        return fd
    }

    /// Whether a bound socket only listens on loopback (127.0.0.0/8 or ::1).
    static func isLoopback(_ fd: Int32) -> Bool {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0 else { return false }
        let family = Int32(storage.ss_family)
        return withUnsafePointer(to: &storage) { pointer in
            if family == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    var address = $0.pointee.sin6_addr
                    return withUnsafeBytes(of: &address) { $0.elementsEqual([UInt8](repeating: 0, count: 15) + [1]) }
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                UInt32(bigEndian: $0.pointee.sin_addr.s_addr) >> 24 == 127
            }
        }
    }

    /// The port a socket is bound to.
    static func boundPort(_ fd: Int32) throws(HTTP2Error) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0 else { throw errnoError("getsockname") }
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { pointer in
            if family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin6_port))
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                Int(UInt16(bigEndian: $0.pointee.sin_port))
            }
        }
    }

    /// What accepting gave.
    enum Accepted {
        /// A connection, non-blocking, with Nagle off.
        case connection(Int32)
        /// None is pending.
        case none
        /// The process (or system) has no descriptor or memory for one: accepting again at once would spin.
        case exhausted(String)
        /// This one failed (the peer gave up meanwhile): the next may not.
        case failed
    }

    /// Accepts one pending connection.
    static func accept(_ listener: Int32) -> Accepted {
        let fd = nas_accept_nonblocking(listener)
        guard fd < 0 else {
            noDelay(fd)
            return .connection(fd)
        }
        let code = nas_errno()
        switch code {
        case EAGAIN, EWOULDBLOCK: return .none
        case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .exhausted(String(cString: strerror(code)))
        default: return .failed
        }
    }

    /// A resolved peer address.
    struct Address: Sendable {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32 = 0
    }

    /// The address of host:port: `numericOnly` resolves IP literals only (never a DNS query, for the loop), nil
    /// meaning the host is a name to resolve elsewhere.
    static func resolve(host: String, port: String, numericOnly: Bool) -> Result<Address, HTTP2Error>? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (numericOnly ? AI_NUMERICHOST : 0)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, port, &hints, &result)
        if numericOnly && status == EAI_NONAME { return nil }
        guard status == 0, let info = result else {
            return .failure(HTTP2Error(.transport, "cannot resolve \(host): " + String(cString: gai_strerror(status))))
        }
        defer { freeaddrinfo(result) }
        var address = Address()
        address.family = info.pointee.ai_family
        address.length = info.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &address.storage) { storage in
            storage.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen)))
        }
        return .success(address)
    }

    /// Starts a non-blocking connection to `address`; `inProgress` when the loop must wait for it to be writable.
    static func connect(to address: Address) -> Result<(fd: Int32, inProgress: Bool), HTTP2Error> {
        let fd = socket(address.family, streamFlags, 0)
        guard fd >= 0 else { return .failure(errnoError("socket")) }
        noDelay(fd)
        var storage = address.storage
        let status = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if status == 0 { return .success((fd, false)) }
        guard nas_errno() == EINPROGRESS else {
            let error = HTTP2Error(.transport, String(cString: strerror(nas_errno())))
            close(fd)
            return .failure(error)
        }
        return .success((fd, true))
    }

    /// The error a non-blocking connect ended with, nil when it succeeded.
    static func connectError(_ fd: Int32) -> String? {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0 ? nil : String(cString: strerror(error))
    }

    private static let streamFlags = Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)

    private static func noDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The one place errno becomes a transport error.
    static func errnoError(_ operation: String) -> HTTP2Error {
        let code = nas_errno()
        return HTTP2Error(.transport, "\(operation) failed: \(String(cString: strerror(code))) (errno \(code))")
    }
}
