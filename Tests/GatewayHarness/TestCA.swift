import Foundation

/// Certificates made with `openssl` for one test run, in `directory`: a CA (`ca.pem`,
/// `ca.key`), a server certificate for `localhost` signed by it (`server.pem`, `server.key`;
/// SAN `DNS:localhost` only, serverAuth), a client certificate signed by it (`client.pem`,
/// `client.key`, clientAuth), and a second CA that signed nothing (`other-ca.pem`).
///
/// Guarantees: every file exists when `make(in:)` returns (P-256 keys, valid two days); a
/// missing or failing `openssl` throws with its error output; nothing is skipped.
public struct TestCA: Sendable {
    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    public let directory: URL

    public var caFile: String { path("ca.pem") }
    public var otherCAFile: String { path("other-ca.pem") }
    public var serverCertFile: String { path("server.pem") }
    public var serverKeyFile: String { path("server.key") }
    public var clientCertFile: String { path("client.pem") }
    public var clientKeyFile: String { path("client.key") }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Makes the certificates in `directory` (which must exist).
    public static func make(in directory: URL) throws -> TestCA {
        let ca = TestCA(directory: directory)
        func key(_ name: String) -> [String] {
            ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca.path(name)]
        }
        try openssl(["req", "-x509"] + key("ca.key") + ["-out", ca.caFile, "-days", "2", "-subj", "/CN=sluice test CA"])
        try openssl(["req", "-x509"] + key("other-ca.key") + ["-out", ca.otherCAFile, "-days", "2", "-subj", "/CN=sluice other CA"])
        try "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: ca.path("server.ext"), atomically: true, encoding: .utf8)
        try "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n".write(toFile: ca.path("client.ext"), atomically: true, encoding: .utf8)
        for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=sluice-recorder")] {
            try openssl(["req"] + key("\(name).key") + ["-out", ca.path("\(name).csr"), "-subj", subject])
            try openssl([
                "x509", "-req", "-in", ca.path("\(name).csr"), "-CA", ca.caFile, "-CAkey", ca.path("ca.key"), "-CAcreateserial",
                "-out", ca.path("\(name).pem"), "-days", "2", "-extfile", ca.path("\(name).ext"),
            ])
        }
        return ca
    }

    private static func openssl(_ arguments: [String]) throws {
        let candidates = ["/usr/bin/openssl", "/usr/local/bin/openssl"]
        guard let tool = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw SetupError(description: "openssl is missing: run scripts/provision.sh test")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw SetupError(description: "openssl \(arguments.joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))")
        }
    }
}
