// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .library(name: "Detection", targets: ["Detection"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Span export over OTLP/HTTP only: the gRPC trait would build grpc-swift as well.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(name: "CHyperscan"),
        // Content codings through the real libraries (Debian: zlib1g-dev, libbrotli-dev, libzstd-dev).
        .target(
            name: "CCodings",
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("brotlidec"), .linkedLibrary("zstd")]
        ),
        .target(name: "Codings", dependencies: ["CCodings"]),
        .target(
            name: "Pipeline",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // Stage spans through the tracing API; the OTel backend is bootstrapped by the executable.
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "KafkaBus",
            dependencies: [
                "Pipeline", "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Detection", dependencies: ["CHyperscan", "Codings", .product(name: "Crypto", package: "swift-crypto")]),
        // The Model Context Protocol's messages (strict JSON, JSON-RPC, server-sent events, tool
        // rules): pure and synchronous, shared by the Ingress, the Inspector and the Forwarder.
        .target(name: "MCP"),
        .target(
            name: "Inspector",
            dependencies: [
                "Pipeline", "Detection", "Codings", "MCP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "Operations",
            dependencies: [
                "Pipeline",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Ingress",
            dependencies: [
                "Pipeline", "Codings", "Detection", "Operations", "MCP",
                .product(name: "Hummingbird", package: "hummingbird"),
                // The header-read timeout is a channel handler over Hummingbird's HTTP parts.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Forwarder",
            dependencies: [
                "Pipeline", "Detection", "Codings", "MCP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "Recorder",
            dependencies: [
                "Pipeline",
                // The audit chain's HMAC and key derivation.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                // The HEC and webhook sinks.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // The syslog sink: TCP/TLS/UDP transports (RFC 5425, RFC 6587 framing).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // The postgres recordings store.
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "Pipeline", "KafkaBus", "Detection", "Inspector", "Ingress", "Forwarder", "Recorder", "Operations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "OTel", package: "swift-otel"),
            ]
        ),
        .executableTarget(name: "BusBench", dependencies: ["Pipeline", "KafkaBus"], path: "Benchmarks/BusBench"),
        // Kafka mode: the time between a call's records on requests, inspected, outcomes and replies.
        .executableTarget(name: "HopTrace", dependencies: ["Pipeline", "KafkaBus"], path: "Benchmarks/HopTrace"),
        .executableTarget(name: "DetectionBench", dependencies: ["Detection"], path: "Benchmarks/DetectionBench"),
        // Recorder drain rate: a pre-filled audit topic on the embedded bus, timed to the last event.
        .executableTarget(
            name: "RecorderBench",
            dependencies: [
                "Pipeline", "Recorder", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Benchmarks/RecorderBench"
        ),
        // The HTTP stack alone (Hummingbird server + AsyncHTTPClient), and a proxy on SwiftNIO alone,
        // each optionally with inline detection: the ceilings of the proxy table's `sluice run` row.
        .executableTarget(
            name: "ProxyFloor",
            dependencies: [
                "Detection",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/ProxyFloor"
        ),
        .executableTarget(
            name: "GatewayBench",
            dependencies: ["GatewayHarness", .product(name: "NIOHTTP1", package: "swift-nio")],
            path: "Benchmarks/GatewayBench"
        ),
        .target(name: "BusContract", dependencies: ["Pipeline"], path: "Tests/BusContract"),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "BusContract", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "KafkaBusTests",
            dependencies: ["KafkaBus", "Pipeline", "BusContract", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "DetectionTests", dependencies: ["Detection", "Codings", "CodingsEncoders"]),
        // Recall and precision on a labelled corpus written independently of the rules.
        .testTarget(name: "DetectionQualityTests", dependencies: ["Detection"]),
        .testTarget(name: "DetectionHoldoutTests", dependencies: ["Detection"]),
        // Test-only encoders (zlib, libbrotlienc, libzstd) to build streams and bombs at test time.
        .target(
            name: "CodingsEncoders",
            path: "Tests/CodingsEncoders",
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("brotlienc"), .linkedLibrary("zstd")]
        ),
        .testTarget(name: "CodingsTests", dependencies: ["Codings", "CodingsEncoders"]),
        .testTarget(name: "MCPTests", dependencies: ["MCP"]),
        .testTarget(
            name: "InspectorTests",
            dependencies: [
                "Inspector", "Pipeline", "Detection", "Codings", "CodingsEncoders", "MCP",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "IngressTests",
            dependencies: [
                "GatewayHarness", "BusContract",
                "Ingress", "Pipeline", "Detection",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ForwarderTests",
            dependencies: [
                "Forwarder", "Pipeline", "Detection", "BusContract", "MCP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RecorderTests",
            dependencies: [
                "Recorder", "Pipeline", "BusContract", "GatewayHarness", .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "GatewayHarness",
            dependencies: [
                "Pipeline", "KafkaBus", "Detection", "BusContract",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            path: "Tests/GatewayHarness"
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "GatewayHarness", "Pipeline", "BusContract",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
