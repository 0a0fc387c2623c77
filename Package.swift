// swift-tools-version:6.0
// tunnel: keeps SSH tunnels up. Layers (see README "Architecture"):
//   tunnel (CLI) -> TunnelService -> TunnelEngine -> SSH2 -> CLibSSH2 (libssh2)
//   and TunnelConfig (pure ssh_config parsing) beside them.
import PackageDescription

let package = Package(
    name: "tunnel",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "tunnel", targets: ["tunnel"]),
        .library(name: "SSH2", targets: ["SSH2"]),
        .library(name: "TunnelConfig", targets: ["TunnelConfig"]),
        .library(name: "TunnelEngine", targets: ["TunnelEngine"]),
        .library(name: "TunnelService", targets: ["TunnelService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        // The Prometheus endpoint (`--metrics`): swift-metrics types, exposition by swift-prometheus.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // [control] LineBasedFrameDecoder for the control socket; ServiceGroup for graceful shutdown.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibSSH2",
            pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"]), .brew(["libssh2"])]
        ),
        // SHA-1/SHA-256/HMAC/Base64 without a crypto library, shared by every layer that reads OpenSSH files.
        .target(name: "Digests"),
        .target(name: "SSH2", dependencies: ["CLibSSH2", "Digests"]),
        .target(name: "TunnelConfig", dependencies: ["Digests"]),
        .target(
            name: "TunnelEngine",
            dependencies: [
                "SSH2", "TunnelConfig", "Digests",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "TunnelService",
            dependencies: [
                "TunnelEngine", "TunnelConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "tunnel",
            dependencies: [
                "TunnelService", "TunnelConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Throwaway sshd, TCP echo/sink servers: shared by the tests, the examples and the benchmark.
        .target(name: "TunnelTestSupport", dependencies: ["Digests"]),

        // Examples: built by every `swift build`, so they cannot go stale.
        .executableTarget(
            name: "embed-tunnel",
            dependencies: [
                "TunnelEngine", "TunnelConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Examples/embed-tunnel"
        ),
        .executableTarget(
            name: "tunnel-bench",
            dependencies: ["TunnelTestSupport", "TunnelConfig", "CLibSSH2", "Digests",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/tunnel-bench"
        ),

        .testTarget(name: "SSH2Tests", dependencies: ["SSH2", "Digests", "TunnelTestSupport"]),
        .testTarget(name: "TunnelConfigTests", dependencies: ["TunnelConfig", "Digests", "TunnelTestSupport"]),
        // Engine logic that needs no server (host-key policy); anything with a real sshd is in IntegrationTests.
        .testTarget(name: "TunnelEngineTests", dependencies: ["TunnelEngine", "TunnelConfig", "SSH2", "Digests",
                                                              .product(name: "NIOCore", package: "swift-nio"),
                                                              .product(name: "NIOEmbedded", package: "swift-nio"),
                                                              .product(name: "NIOHTTP1", package: "swift-nio"),
                                                              .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "TunnelServiceTests", dependencies: ["TunnelService", "TunnelEngine", "TunnelConfig"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["TunnelEngine", "TunnelConfig", "SSH2", "TunnelTestSupport", "Digests",
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "CLITests", dependencies: ["TunnelTestSupport", "Digests"]),
    ]
)
