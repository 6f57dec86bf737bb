/// What a server lets through to its handler: the routes that exist and the bearer token every call must carry.
/// Checked as soon as a request's headers arrive, so a refused body is never buffered.
public struct RequestGate: Sendable {
    private let expected: [UInt8]
    private let routes: Set<String>

    /// A gate for `routes`, asking for `authorization: Bearer <token>` (the scheme in any case, RFC 7235 2.1).
    public init(token: String, routes: Set<String>) {
        expected = Array(token.utf8)
        self.routes = routes
    }

    /// The refusal of a request with these headers, or nil to accept it. The token is checked first: a caller
    /// without it learns nothing about the routes.
    public func check(method: String, path: String, authorization: String?) -> HTTP2Rejection? {
        guard let authorization, tokenMatches(authorization) else { return .unauthenticated }
        guard routes.contains(path) else { return .notFound(path: path) }
        guard method == "POST" else { return .methodNotAllowed(method: method, path: path) }
        return nil
    }

    /// Whether the field is `Bearer <token>`: the scheme is case-insensitive and may be followed by several spaces;
    /// the token is compared in time independent of where the first difference is, so it cannot be guessed by
    /// timing.
    private func tokenMatches(_ header: String) -> Bool {
        let field = Array(header.utf8)
        let scheme = Array("bearer".utf8)
        guard field.count > scheme.count, field[scheme.count] == UInt8(ascii: " "),
            zip(field, scheme).allSatisfy({ $0 | 0x20 == $1 })
        else { return false }
        let given = field[scheme.count...].drop { $0 == UInt8(ascii: " ") }.map { $0 }
        var difference = expected.count ^ given.count
        for index in 0..<expected.count {
            difference |= Int(expected[index] ^ (index < given.count ? given[index] : 0))
        }
        return difference == 0
    }
}
