// swift-tools-version:6.0
// Coverage-guided fuzz targets (libFuzzer) for tunnel's parsers. A package of its own, depending on the main one
// by path, so a normal `swift build` of tunnel never sees libFuzzer. Built and run by `Fuzz/run [SECONDS]`:
//   swift build -Xswiftc -sanitize=fuzzer,address
// Each executable is one target: its main hands libFuzzer the harness (FuzzDriver); the harness bodies are in the
// main package (FuzzHarnesses), where the unit test FuzzRegressionTests also runs them on the committed corpora.
import PackageDescription

let targets = ["config", "forward-spec", "known-hosts", "private-key", "socks", "http-proxy"]

let package = Package(
    name: "tunnel-fuzz",
    dependencies: [
        // Named: the directory may be called anything (a git worktree, a CI checkout).
        .package(name: "tunnel", path: ".."),
    ],
    targets: [
        .target(name: "FuzzDriver"),
    ] + targets.map { name in
        .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzDriver", .product(name: "FuzzHarnesses", package: "tunnel")],
                          path: "Sources/fuzz-\(name)")
    }
)
