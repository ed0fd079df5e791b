import Foundation

/// A private PostgreSQL server for the postgres recordings store's tests: Debian's `postgresql`
/// binaries, a cluster made with `initdb` in a directory of its own, listening on a free
/// loopback port and on a socket in that directory, with
/// - a superuser `sluice` whose password (`password`) is asked over TCP (SCRAM-SHA-256); the
///   socket trusts local users (for `psql`);
/// - TLS on (a certificate for `localhost` from a `TestCA` made for the run: `caFile`);
/// - `fsync` off (a test cluster: speed over durability); every connection logged (`server.log`).
///
/// Run as root, every server command runs as the `postgres` user (`runuser`), since PostgreSQL
/// refuses to run as root; the directory then belongs to that user.
///
/// Start-up fails with a clear error when the binaries are missing (`scripts/provision.sh test`
/// installs `postgresql`); the tests then fail, they are not skipped.
public final class PostgresServer: @unchecked Sendable {
    // @unchecked: every stored property is a `let` (the class only runs commands).

    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    public let directory: URL
    public let port: Int
    public let password: String
    public let ca: TestCA
    private let bin: String
    private let asRoot: Bool

    public var dataDirectory: String { path("data") }
    public var caFile: String { ca.caFile }

    /// `postgres://sluice:…@127.0.0.1:PORT/postgres?sslmode=disable` (loopback, no TLS).
    public var plainURL: String { "postgres://sluice:\(password)@127.0.0.1:\(port)/postgres?sslmode=disable" }
    /// `postgres://sluice:…@localhost:PORT/postgres` (TLS, certificate and name checked).
    public var tlsURL: String { "postgres://sluice:\(password)@localhost:\(port)/postgres" }

    public init() throws {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.compactMap(Int.init).max() else {
            throw SetupError(description: "PostgreSQL is missing (/usr/lib/postgresql/*/bin): run scripts/provision.sh test (package postgresql)")
        }
        bin = "/usr/lib/postgresql/\(version)/bin"
        asRoot = getuid() == 0
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try RsyslogServer.freePort(udp: false)
        password = "pw-" + UUID().uuidString.prefix(8).lowercased()
        ca = try TestCA.make(in: directory)
        try password.write(toFile: path("pwfile"), atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: path("server.log"), contents: nil)
        try chownToServerUser(directory.path, recursive: true)
        try run(bin + "/initdb", [
            "-D", dataDirectory, "-U", "sluice", "--pwfile=\(path("pwfile"))", "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        ])
        // The server's key must be the server user's and private.
        for name in ["server.pem", "server.key"] {
            try FileManager.default.copyItem(atPath: ca.path(name), toPath: (dataDirectory as NSString).appendingPathComponent(name))
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: (dataDirectory as NSString).appendingPathComponent("server.key"))
        try chownToServerUser(dataDirectory, recursive: true)
        let conf = """

            listen_addresses = 'localhost'
            port = \(port)
            unix_socket_directories = '\(directory.path)'
            fsync = off
            ssl = on
            ssl_cert_file = 'server.pem'
            ssl_key_file = 'server.key'
            max_connections = 50
            log_connections = on

            """
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: (dataDirectory as NSString).appendingPathComponent("postgresql.conf")))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(conf.utf8))
        try handle.close()
        try start()
    }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Starts the server and returns once it takes connections (`pg_ctl -w`, at most 30 s).
    public func start() throws {
        try run(bin + "/pg_ctl", ["-D", dataDirectory, "-l", path("server.log"), "-w", "-t", "30", "start"])
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`): its connections drop.
    public func stop() {
        try? run(bin + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
    }

    /// Stops the server and removes its directory.
    public func shutdown() {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    /// Runs `sql` with `psql` over the socket (trusted) and returns its unaligned, tuples-only output.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try run(bin + "/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory.path, "-p", "\(port)", "-U", "sluice", "-d", database, "-c", sql])
    }

    public func serverLog() -> String {
        String(decoding: FileManager.default.contents(atPath: path("server.log")) ?? Data(), as: UTF8.self)
    }

    // MARK: - Commands

    /// Runs `tool` (as the `postgres` user when this process is root) and returns its output;
    /// a non-zero exit throws with the output and the server's log.
    ///
    /// Spawned with `posix_spawn` and reaped with `waitpid`, not with Foundation's `Process`:
    /// `pg_ctl start` leaves a daemon behind, and Foundation's child monitor was seen never to
    /// notice `runuser` exiting then (the test hung in `waitUntilExit` with `runuser` a zombie).
    @discardableResult
    private func run(_ tool: String, _ arguments: [String]) throws -> String {
        let argv = asRoot ? ["/usr/sbin/runuser", "-u", "postgres", "--", tool] + arguments : [tool] + arguments
        let output = path("command-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(atPath: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The test process blocks some signals (SIGTERM among them); a child starts with none blocked.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, environ)
        guard spawned == 0 else { throw SetupError(description: "cannot start \(argv[0]): errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw SetupError(description: "waitpid \(argv[0]): errno \(errno)") }
        }
        let text = String(decoding: FileManager.default.contents(atPath: output) ?? Data(), as: UTF8.self)
        // WIFEXITED && WEXITSTATUS == 0, spelled out (the C macros are not imported).
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw SetupError(description: "\((tool as NSString).lastPathComponent) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)\n\(serverLog())")
        }
        return text
    }

    private func chownToServerUser(_ path: String, recursive: Bool) throws {
        guard asRoot else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/chown")
        p.arguments = (recursive ? ["-R"] : []) + ["postgres:postgres", path]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw SetupError(description: "chown postgres \(path) failed: is there a postgres user? (package postgresql)") }
    }
}
