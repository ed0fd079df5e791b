import Foundation

/// A private `rsyslogd` for the syslog sink's tests: its own directory, configuration, PID
/// file and free loopback ports, with
/// - `tcp`: imtcp, plain, RFC 6587 octet-counted frames;
/// - `tls`: imtcp with the gtls driver and a server certificate (CN and SAN `localhost`, no IP
///   entry: swift-nio-ssl accepts a certificate whose IP entry is the connected address whatever
///   name is expected) from a CA made for this run with `openssl`; no client certificate asked;
/// - `mtls`: the same, requiring a client certificate signed by that CA (`x509/certvalid`);
/// - `udp`: imudp;
/// each writing every message it receives to `<name>.raw` (the message as received, one per
/// line) and `<name>.fields` (rsyslog's own parse: PRI, VERSION, HOSTNAME, APP-NAME, PROCID,
/// MSGID, STRUCTURED-DATA, MSG, tab-separated).
///
/// Start-up fails with a clear error when `rsyslogd`, its gtls driver or `openssl` is missing
/// (`scripts/provision.sh test` installs them); the tests then fail, they are not skipped.
public final class RsyslogServer {
    public enum Input: String, CaseIterable, Sendable { case tcp, tls, mtls, udp }

    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    public static let rsyslogd = "/usr/sbin/rsyslogd"
    public static let gtlsDriver = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"

    public let directory: URL
    public let ports: [Input: Int]
    /// The CA that signed the server's (and the client's) certificate.
    public var caFile: String { path("ca.pem") }
    /// A CA that signed nothing the server presents.
    public var otherCAFile: String { path("other-ca.pem") }
    public var clientCertFile: String { path("client.pem") }
    public var clientKeyFile: String { path("client.key") }
    private var process: Process?

    public init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.rsyslogd) else {
            throw SetupError(description: "\(Self.rsyslogd) is missing: run scripts/provision.sh test (packages rsyslog rsyslog-gnutls openssl)")
        }
        let gtls = ["/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog", "/usr/lib/rsyslog"]
            .map { $0 + "/lmnsd_gtls.so" }
        guard gtls.contains(where: FileManager.default.fileExists(atPath:)) else {
            throw SetupError(description: "rsyslog's TLS driver (lmnsd_gtls.so) is missing: run scripts/provision.sh test (package rsyslog-gnutls)")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-rsyslog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        ports = [.tcp: try Self.freePort(udp: false), .tls: try Self.freePort(udp: false), .mtls: try Self.freePort(udp: false),
                 .udp: try Self.freePort(udp: true)]
        _ = try TestCA.make(in: directory)  // ca.pem, server.pem/.key, client.pem/.key, other-ca.pem
        try writeConfiguration()
        try start()
    }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    public func port(_ input: Input) -> Int { ports[input] ?? 0 }

    /// Starts `rsyslogd -n` and returns once every input listens (at most 10 s).
    public func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.rsyslogd)
        p.arguments = ["-n", "-f", path("rsyslog.conf"), "-i", path("rsyslogd.pid")]
        let log = FileHandle(forWritingAtPath: path("rsyslogd.log")) ?? FileHandle.standardError
        p.standardOutput = log
        p.standardError = log
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(10)
        while !Input.allCases.allSatisfy({ Self.isListening(port: port($0), udp: $0 == .udp) }) {
            guard p.isRunning else {
                process = nil
                throw SetupError(description: "rsyslogd exited (status \(p.terminationStatus)): \(daemonLog())")
            }
            guard Date() < deadline else {
                stop()
                throw SetupError(description: "rsyslogd did not listen within 10 s: \(daemonLog())")
            }
            usleep(20_000)  // polling for the listening sockets
        }
    }

    /// Stops the daemon (SIGKILL: it inherits the test process's blocked signals, SIGTERM among
    /// them, so it would never see a SIGTERM) and waits until it has exited. Its connections are
    /// closed by the kernel, as in a crash.
    public func stop() {
        guard let p = process else { return }
        process = nil
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    deinit { stop() }

    /// Stops the daemon and removes its directory.
    public func shutdown() {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The messages `input` received so far, as received (without framing).
    public func received(_ input: Input) -> [String] {
        fileLines(path("\(input.rawValue).raw"))
    }

    /// rsyslog's parse of each message `input` received: PRI, VERSION, HOSTNAME, APP-NAME,
    /// PROCID, MSGID, STRUCTURED-DATA, MSG.
    public func parsed(_ input: Input) -> [[String]] {
        fileLines(path("\(input.rawValue).fields")).map { $0.split(separator: "\t", maxSplits: 7, omittingEmptySubsequences: false).map(String.init) }
    }

    private func fileLines(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// The bytes `input` received so far, as written (one message per line).
    public func receivedBytes(_ input: Input) -> Data {
        FileManager.default.contents(atPath: path("\(input.rawValue).raw")) ?? Data()
    }

    public func daemonLog() -> String {
        String(decoding: FileManager.default.contents(atPath: path("rsyslogd.log")) ?? Data(), as: UTF8.self)
    }

    // MARK: - Set-up

    private func writeConfiguration() throws {
        var conf = """
            global(workDirectory="\(directory.path)" maxMessageSize="256k"
              defaultNetstreamDriverCAFile="\(caFile)"
              defaultNetstreamDriverCertFile="\(path("server.pem"))"
              defaultNetstreamDriverKeyFile="\(path("server.key"))")
            module(load="imtcp" maxSessions="200")
            module(load="imudp")
            template(name="raw" type="string" string="%rawmsg%\\n")
            template(name="fields" type="string" string="%pri%\\t%protocol-version%\\t%hostname%\\t%app-name%\\t%procid%\\t%msgid%\\t%structured-data%\\t%msg%\\n")

            """
        for input in Input.allCases {
            conf += """
                ruleset(name="\(input.rawValue)") {
                  action(type="omfile" file="\(path("\(input.rawValue).raw"))" template="raw")
                  action(type="omfile" file="\(path("\(input.rawValue).fields"))" template="fields")
                }

                """
        }
        conf += """
            input(type="imtcp" address="127.0.0.1" port="\(port(.tcp))" ruleset="tcp")
            input(type="imtcp" address="127.0.0.1" port="\(port(.tls))" ruleset="tls"
                  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
            input(type="imtcp" address="127.0.0.1" port="\(port(.mtls))" ruleset="mtls"
                  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
            input(type="imudp" address="127.0.0.1" port="\(port(.udp))" ruleset="udp")

            """
        try conf.write(toFile: path("rsyslog.conf"), atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: path("rsyslogd.log"), contents: nil)
    }

    /// A loopback port nobody listens on right now.
    public static func freePort(udp: Bool) throws -> Int {
        let (fd, port) = try boundSocket(udp: udp)
        close(fd)
        return port
    }

    /// A TCP socket listening on loopback that never accepts or reads: the kernel completes
    /// connections and takes bytes until its buffers are full, then writes stall. Close the
    /// descriptor when done.
    public static func listenerThatNeverReads() throws -> (fd: Int32, port: Int) {
        let (fd, port) = try boundSocket(udp: false)
        guard listen(fd, 8) == 0 else {
            close(fd)
            throw SetupError(description: "listen: errno \(errno)")
        }
        return (fd, port)
    }

    /// A socket bound to 127.0.0.1 on a port the kernel chose.
    private static func boundSocket(udp: Bool) throws -> (Int32, Int) {
        let fd = socket(AF_INET, udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SetupError(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw SetupError(description: "bind: errno \(errno)")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Whether a socket is bound (UDP) or listening (TCP) on 127.0.0.1:`port`, from /proc/net.
    public static func isListening(port: Int, udp: Bool) -> Bool {
        let table = String(decoding: FileManager.default.contents(atPath: udp ? "/proc/net/udp" : "/proc/net/tcp") ?? Data(), as: UTF8.self)
        let local = String(format: "0100007F:%04X", port)
        return table.split(separator: "\n").contains { row in
            let columns = row.split(separator: " ")
            return columns.count > 3 && columns[1] == local && (udp || columns[3] == "0A")
        }
    }
}
