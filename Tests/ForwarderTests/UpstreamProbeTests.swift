import BusContract
import Foundation
import Logging
import NIOCore
import NIOPosix
import Pipeline
import Testing

@testable import Forwarder

/// `UpstreamProbe`: the Forwarder's reachability checks of its upstreams (`/readyz`).
@Suite struct UpstreamProbeTests {
    @Test(arguments: [
        ("http://fn:9000", "fn", 9000),
        ("http://fn", "fn", 80),
        ("https://fn.example/base/path", "fn.example", 443),
        ("HTTPS://fn:8443/", "fn", 8443),
        ("http://127.0.0.1:1/x?y", "127.0.0.1", 1),
        ("http://[::1]:8080", "::1", 8080),
    ])
    func addressOfAnUpstream(url: String, host: String, port: Int) throws {
        let address = try #require(UpstreamProbe.address(of: url))
        #expect(address.host == host)
        #expect(address.port == port)
    }

    @Test(arguments: ["", "fn:9000", "not a url", "http://"])
    func noAddressWithoutAHost(url: String) {
        #expect(UpstreamProbe.address(of: url) == nil)
    }

    /// A listener on a free port, and a port nobody listens on.
    static func listener() async throws -> (Channel, Int) {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        return (channel, try #require(channel.localAddress?.port))
    }

    @Test func connectsOnlyWhereSomethingListens() async throws {
        let (channel, port) = try await Self.listener()
        #expect(await UpstreamProbe.connects(host: "127.0.0.1", port: port, timeout: .seconds(2)))
        try await channel.close()
        #expect(!(await UpstreamProbe.connects(host: "127.0.0.1", port: port, timeout: .seconds(2))))
    }

    @Test func setsOneDependencyCheckPerConnection() async throws {
        let (channel, port) = try await Self.listener()
        defer { channel.close(promise: nil) }
        let (dead, deadPort) = try await Self.listener()
        try await dead.close()
        let json = """
            {"sealing": {"keys": [{"id": "test", "secret": "env:UNUSED"}], "fingerprint_key": "env:UNUSED"},
             "connections": [{"name": "up", "upstream": "http://127.0.0.1:\(port)", "allow_groups": ["ci"]},
                             {"name": "up-too", "upstream": "http://127.0.0.1:\(port)/other", "allow_groups": ["ci"]},
                             {"name": "down", "upstream": "http://127.0.0.1:\(deadPort)", "allow_groups": ["ci"]}]}
            """
        let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
        let targets = try UpstreamTarget.table(config, environment: [:])
        let board = ReadinessBoard(dependenciesGate: true)
        let probe = UpstreamProbe(targets: targets, readiness: board, interval: .milliseconds(50), timeout: .seconds(2), logger: Logger(label: "test"))
        #expect(probe.endpoints.count == 2, "two connections share one host and port")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await probe.run() }
            let probed = await eventually {
                board.check("upstream:up")?.ready == true && board.check("upstream:up-too")?.ready == true
                    && board.check("upstream:down")?.detail.hasPrefix("no TCP connection") == true
            }
            #expect(probed, "\(board.report)")
            #expect(board.check("upstream:down")?.ready == false)
            #expect(board.check("upstream:down")?.kind == .dependency)
            #expect(!board.report.ready)
            group.cancelAll()
        }
    }
}
