import Foundation

/// Certificates made by the `openssl` command for the TLS tests, in a temporary folder: a CA, a server
/// certificate it signed for 127.0.0.1 and localhost, a client certificate it signed, and a second, unrelated CA
/// (with its own server certificate) that must not be trusted.
public struct TestCertificates: Sendable {
    /// The folder holding the PEM files.
    public let directory: URL
    /// The CA that signed `serverCertificate` and `clientCertificate`.
    public var ca: String { path("ca.pem") }
    public var serverCertificate: String { path("server.pem") }
    public var serverKey: String { path("server.key") }
    public var clientCertificate: String { path("client.pem") }
    public var clientKey: String { path("client.key") }
    /// A CA that signed neither.
    public var otherCA: String { path("other-ca.pem") }
    /// A server certificate for 127.0.0.1 signed by `otherCA`.
    public var otherServerCertificate: String { path("other-server.pem") }
    public var otherServerKey: String { path("other-server.key") }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Makes every file with `openssl` (EC P-256 keys, valid for two days).
    public static func make() async throws -> TestCertificates {
        let certificates = TestCertificates(directory: try TestSupport.temporaryDirectory("nas-tls"))
        try await certificates.makeCA("ca")
        try await certificates.makeCA("other-ca")
        try await certificates.issue("server", by: "ca", subjectAltName: "IP:127.0.0.1,DNS:localhost")
        try await certificates.issue("client", by: "ca", subjectAltName: "DNS:nas-test-client")
        try await certificates.issue("other-server", by: "other-ca", subjectAltName: "IP:127.0.0.1,DNS:localhost")
        return certificates
    }

    private static let keyOptions = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    private func makeCA(_ name: String) async throws {
        try await openssl(["req", "-x509"] + Self.keyOptions + [
            "-keyout", path("\(name).key"), "-out", path("\(name).pem"), "-days", "2", "-subj", "/CN=nas test \(name)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    private func issue(_ name: String, by ca: String, subjectAltName: String) async throws {
        try await openssl(["req"] + Self.keyOptions + [
            "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=nas test \(name)",
        ])
        let extensions = path("\(name).ext")
        try Data("subjectAltName=\(subjectAltName)\nbasicConstraints=CA:FALSE\n".utf8)
            .write(to: URL(fileURLWithPath: extensions))
        try await openssl([
            "x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"),
            "-CAcreateserial", "-out", path("\(name).pem"), "-days", "2", "-extfile", extensions,
        ])
    }

    private func openssl(_ arguments: [String]) async throws {
        let result = try await TestSupport.run("/usr/bin/openssl", arguments)
        guard result.status == 0 else {
            throw TestSupportError("openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(result.stderr)")
        }
    }
}
