// The bodies of the fuzz targets (Fuzz/, libFuzzer) and of the unit test that replays their corpora
// (Tests/FuzzRegressionTests): one place, so a crash input found by the fuzzer is replayed through exactly the code
// that found it.
//
// Each harness feeds arbitrary bytes to one parser the way the program does and uses what comes out, so a crash, a
// trap (out-of-range index, overflow) or a loop that never ends is found. `@testable`: the proxy parsers and the
// forward syntax are internal to their modules; SwiftPM compiles debug builds for testing, and release builds skip
// this module's body (nothing in the program uses it).

#if DEBUG
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SSH2
@testable import TunnelConfig
@testable import TunnelEngine

public enum FuzzHarness: String, CaseIterable, Sendable {
    case config
    case forwardSpec = "forward-spec"
    case knownHosts = "known-hosts"
    case privateKey = "private-key"
    case socks
    case httpProxy = "http-proxy"

    public func run(_ data: [UInt8]) {
        switch self {
        case .config: ConfigHarness.run(data)
        case .forwardSpec: ForwardSpecHarness.run(data)
        case .knownHosts: KnownHostsHarness.run(data)
        case .privateKey: PrivateKeyHarness.run(data)
        case .socks: SOCKSHarness.run(data)
        case .httpProxy: HTTPProxyHarness.run(data)
        }
    }
}

/// A fixed context, so a run depends on the input alone (not on who runs it or where). The home directory does
/// not exist: `Include ~/x` finds nothing rather than reading the fuzzing user's files.
private let fuzzContext = ConfigContext(homeDirectory: "/nonexistent/fuzz-home", userName: "fuzz",
                                        environment: ["FUZZ": "value"], localHostName: "fuzz.local", userID: 1000)

/// The whole config pipeline as `tunnel check` runs it: parse, then resolve every named host (and one unnamed).
enum ConfigHarness {
    static func run(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        guard let config = try? TunnelConfigFile.parse(text: text, file: "fuzz.conf", context: fuzzContext,
                                                       matchExec: .skip) else { return }
        for name in config.concreteHostNames.prefix(8) + ["fuzz-unnamed.example"] {
            let host = config.resolve(host: name)
            _ = host.localForwards.map(\.description)
            _ = host.remoteForwards.map(\.description)
            _ = host.dynamicForwards.map(\.description)
        }
    }
}

/// LocalForward / RemoteForward / DynamicForward arguments: the input is split at NUL bytes into arguments, the
/// first byte choosing the keyword.
enum ForwardSpecHarness {
    static func run(_ data: [UInt8]) {
        guard let selector = data.first else { return }
        let arguments = data.dropFirst().split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        let location = SourceLocation(file: "fuzz.conf", line: 1)
        let environment = ["PORT": "8080", "HOST": "db.example"]
        switch selector % 3 {
        case 0:
            if let spec = try? ForwardSyntax.parseLocal(arguments, environment: environment, at: location) {
                _ = spec.resolved(gatewayPorts: selector & 0x80 != 0).description
            }
        case 1:
            if let spec = try? ForwardSyntax.parseRemote(arguments, environment: environment, at: location) {
                _ = spec.description
            }
        default:
            if let spec = try? ForwardSyntax.parseDynamic(arguments, environment: environment, at: location) {
                _ = spec.resolved(gatewayPorts: selector & 0x80 != 0).description
            }
        }
    }
}

/// A known_hosts file's text, then the lookups a connection makes (by name and port, for each entry's key type).
enum KnownHostsHarness {
    static func run(_ data: [UInt8]) {
        let knownHosts = KnownHosts(text: String(decoding: data, as: UTF8.self), file: "fuzz_known_hosts")
        for (host, port) in [("fuzz.example", 22), ("127.0.0.1", 2222), ("::1", 22)] {
            _ = knownHosts.knownKeyTypes(host: host, port: port)
            for entry in knownHosts.entries.prefix(4) {
                _ = knownHosts.check(host: host, port: port, keyType: entry.keyType, key: entry.key)
            }
            _ = knownHosts.check(host: host, port: port, keyType: "ssh-ed25519", key: [0, 0, 0, 11])
        }
    }
}

/// The private key file inspector on the file's bytes.
enum PrivateKeyHarness {
    static func run(_ data: [UInt8]) {
        _ = try? PrivateKeyFileInfo.inspect(contents: data, path: "fuzz_key")
    }
}

/// A SOCKS 4/4a/5 client's bytes into the proxy's handshake and the remote dynamic forward's, arriving in pieces
/// (the first byte sets the piece size and whether the proxy wants a password).
enum SOCKSHarness {
    static func run(_ data: [UInt8]) {
        guard let control = data.first else { return }
        let input = Array(data.dropFirst())
        let pieceSize = Int(control & 0x0F) + 1
        let credentials = control & 0x10 != 0 ? ProxyCredentials(user: "user", password: "pass") : nil

        var handshake = SOCKSServerHandshake(credentials: credentials)
        var buffer = ByteBuffer()
        var offset = 0
        var steps = 0
        feeding: while true {
            steps += 1
            // Every step either consumes bytes or asks for more: more steps than bytes means a loop.
            precondition(steps <= input.count + 16, "SOCKS handshake loops without consuming input")
            switch handshake.next(&buffer) {
            case .needMore:
                guard offset < input.count else { break feeding }
                let end = min(offset + pieceSize, input.count)
                buffer.writeBytes(input[offset..<end])
                offset = end
            case .reply:
                continue
            case .connect:
                _ = handshake.version
                break feeding
            case .refuse:
                break feeding
            }
        }

        var channelSide = ChannelSideHandshake(permit: .any)
        var start = 0
        while start < input.count {
            let end = min(start + pieceSize, input.count)
            let outcome = channelSide.feed(ByteBuffer(bytes: input[start..<end]))
            start = end
            if case .needMore = outcome.decision { continue }
            if case .connect = outcome.decision { _ = channelSide.connected() }
            break
        }
    }
}

/// An HTTP proxy client's bytes through the same pipeline the proxy port builds (NIOHTTP1's decoder with the proxy's
/// limits, then `HTTPProxyRequestHandler`), on an embedded channel: no sockets.
enum HTTPProxyHarness {
    static func run(_ data: [UInt8]) {
        guard let control = data.first else { return }
        let credentials = control & 0x01 != 0 ? ProxyCredentials(user: "user", password: "pass") : nil
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        do {
            let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes,
                                                                  informationalResponseStrategy: .drop,
                                                                  limitConfiguration: HTTPProxyRequestHandler.decoderLimits))
            try channel.pipeline.syncOperations.addHandler(decoder)
            try channel.pipeline.syncOperations.addHandler(HTTPProxyRequestHandler(credentials: credentials, logger: logger))
        } catch {
            preconditionFailure("pipeline: \(error)")
        }
        // Two writes, so requests split across reads are covered.
        let input = data.dropFirst()
        let split = input.isEmpty ? 0 : Int(control >> 1) % (input.count + 1)
        for part in [input.prefix(split), input.dropFirst(split)] where !part.isEmpty {
            do { try channel.writeInbound(ByteBuffer(bytes: part)) } catch { return }
            while let _ = try? channel.readOutbound(as: ByteBuffer.self) {}
            while let _ = try? channel.readInbound(as: ByteBuffer.self) {}
        }
    }
}
#endif
