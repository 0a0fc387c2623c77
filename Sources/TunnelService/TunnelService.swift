import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TunnelConfig
import TunnelEngine

/// What `tunnel up` runs: brings up the chosen hosts of a config file, reports each, and keeps running until
/// SIGINT/SIGTERM (clean stop, exit 0) or until no tunnel is left (exit 1).
///
/// Reconnect is not here yet: a session that ends is reported and its tunnel stopped.
public final class TunnelService: Sendable {
    public let configPath: String
    public let hostNames: [String]
    private let logger: Logger
    private let passphrasePrompt: PassphrasePrompt?

    /// `passphrasePrompt`: how to ask for the passphrases of encrypted keys (nil: never ask).
    public init(configPath: String, hostNames: [String] = [], logger: Logger, passphrasePrompt: PassphrasePrompt? = nil) {
        self.configPath = configPath
        self.hostNames = hostNames
        self.logger = logger
        self.passphrasePrompt = passphrasePrompt
    }

    public enum StartupError: Error, CustomStringConvertible {
        case config(ConfigErrors)
        case noTunnels(file: String)
        case unknownHosts([String], known: [String], file: String)
        case noForwards([String], file: String)

        public var description: String {
            switch self {
            case .config(let errors): return errors.description
            case .noTunnels(let file): return "\(file): no Host block with a LocalForward, RemoteForward or DynamicForward"
            case .unknownHosts(let names, let known, let file):
                let knownList = known.isEmpty ? "none" : known.joined(separator: ", ")
                return "\(file): no Host named \(names.joined(separator: ", ")) (known: \(knownList))"
            case .noForwards(let names, let file):
                return "\(file): \(names.joined(separator: ", ")) \(names.count == 1 ? "has" : "have") no LocalForward, RemoteForward or DynamicForward: nothing to bring up"
            }
        }
    }

    /// Load the config and pick the hosts to bring up; warnings go to the log.
    public func plan() throws(StartupError) -> [HostConfig] {
        let config: TunnelConfigFile
        do {
            config = try TunnelConfigFile.load(path: configPath)
        } catch {
            throw .config(error)
        }
        for warning in config.warnings {
            // Printed as FILE:LINE: warning: ..., the same as `tunnel check`.
            logger.warning("\(warning.message)", metadata: warning.location.map { ["location": "\($0)"] } ?? [:])
        }
        if hostNames.isEmpty {
            guard !config.tunnelHostNames.isEmpty else { throw .noTunnels(file: configPath) }
            return config.tunnelHosts
        }
        let unknown = hostNames.filter { !config.concreteHostNames.contains($0) }
        guard unknown.isEmpty else { throw .unknownHosts(unknown, known: config.concreteHostNames, file: configPath) }
        let hosts = hostNames.map(config.resolve(host:))
        let idle = hosts.filter { !$0.hasForwards }.map(\.name)
        guard idle.isEmpty else { throw .noForwards(idle, file: configPath) }
        return hosts
    }

    /// Run until stopped. Returns the process exit code.
    public func run() async throws(StartupError) -> Int32 {
        let hosts = try plan()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(System.coreCount, hosts.count)))
        let code = await run(hosts, on: group)
        try? await group.shutdownGracefully()
        return code
    }

    private func run(_ hosts: [HostConfig], on group: MultiThreadedEventLoopGroup) async -> Int32 {
        let events = AsyncStream<Event>.makeStream()
        // Every tunnel made so far, so a signal that arrives while sessions are still being set up stops them at
        // once (their start() then fails with `stopped`) instead of waiting for a server that may never answer.
        let started = NIOLockedValueBox((tunnels: [HostTunnel](), stopping: false))
        let signals = SignalWatcher(signals: [SIGINT, SIGTERM]) { number in
            events.continuation.yield(.signal(number))
            let tunnels = started.withLockedValue { state in
                state.stopping = true
                return state.tunnels
            }
            for tunnel in tunnels { Task { await tunnel.stop() } }
        }
        defer { signals.cancel() }

        var running: [String: HostTunnel] = [:]
        var passphrases: [String: String] = [:]  // asked once per key file, whatever number of hosts use it
        await withTaskGroup(of: (HostConfig, HostTunnel, Result<SessionInfo, Error>).self) { tasks in
            for host in hosts {
                if let reason = Self.unsupportedSetting(host) {
                    var log = logger
                    log[metadataKey: "tunnel"] = "\(host.name)"
                    log.error("\(reason)")
                    continue
                }
                var settings = ConnectionSettings(host)
                if let passphrasePrompt {
                    // Asked before connecting, one key at a time: a prompt must not race the sessions' output.
                    for path in IdentityFiles.needingPassphrase(settings) {
                        if passphrases[path] == nil { passphrases[path] = passphrasePrompt.ask(forKey: path) }
                    }
                    settings.passphrases = passphrases
                }
                let tunnel = HostTunnel(settings: settings, localForwards: host.localForwards,
                                        eventLoop: group.next(), logger: logger)
                let stopping = started.withLockedValue { state in
                    state.tunnels.append(tunnel)
                    return state.stopping
                }
                if stopping { break }
                tasks.addTask { do { return (host, tunnel, .success(try await tunnel.start())) } catch { return (host, tunnel, .failure(error)) } }
            }
            for await (host, tunnel, result) in tasks {
                var log = logger
                log[metadataKey: "tunnel"] = "\(host.name)"
                log[metadataKey: "peer"] = "\(host.hostName):\(host.port)"
                switch result {
                case .success(let info):
                    running[host.name] = tunnel
                    log.notice("\(connectedLine(host, tunnel, info))")
                    warnAboutInactiveForwards(host, log)
                    tunnel.sessionEnded?.whenSuccess { reason in events.continuation.yield(.sessionEnded(host.name, reason)) }
                case .failure(TunnelError.stopped):
                    log.debug("stopped while connecting")
                case .failure(let error):
                    log.error("\(UserMessage.describe(error))")
                }
            }
        }
        let stoppedBySignal = started.withLockedValue { $0.stopping }
        guard !running.isEmpty, !stoppedBySignal else {
            await withTaskGroup(of: Void.self) { tasks in
                for tunnel in running.values { tasks.addTask { await tunnel.stop() } }
            }
            if stoppedBySignal { logger.notice("stopped by a signal while connecting") }
            return stoppedBySignal ? 0 : 1
        }

        var exitCode: Int32 = 0
        for await event in events.stream {
            switch event {
            case .signal(let number):
                logger.notice("\(number == SIGINT ? "SIGINT" : "SIGTERM"): closing tunnels")
                exitCode = 0
            case .sessionEnded(let name, let reason):
                guard let tunnel = running.removeValue(forKey: name) else { continue }
                var log = logger
                log[metadataKey: "tunnel"] = "\(name)"
                log[metadataKey: "peer"] = "\(tunnel.settings.hostName):\(tunnel.settings.port)"
                log.error("\(reason.map { UserMessage.describe($0) } ?? "session closed"); tunnel stopped (reconnect is not implemented yet)")
                await tunnel.stop()
                if !running.isEmpty { continue }
                exitCode = 1
            }
            break
        }
        await withTaskGroup(of: Void.self) { tasks in
            for tunnel in running.values { tasks.addTask { await tunnel.stop() } }
        }
        return exitCode
    }

    /// Settings this release parses but cannot honour, where going ahead would do something else than the user
    /// asked for (connect directly instead of through a jump host; use a key where keys are switched off).
    static func unsupportedSetting(_ host: HostConfig) -> String? {
        let place = host.location.map { " (Host at \($0))" } ?? ""
        let file = host.location?.file ?? "FILE"
        if let problem = host.problems.first {
            // The file is fine for the other hosts; this one has a line that cannot be acted on.
            let more = host.problems.count > 1 ? " (and \(host.problems.count - 1) more problem\(host.problems.count > 2 ? "s" : ""); see tunnel check)" : ""
            return "\(problem)\(more); not brought up"
        }
        if let jumps = host.proxyJump, !jumps.isEmpty {
            return "ProxyJump is set\(place) but not supported yet; not connecting directly instead. Until then use: ssh -F \(file) -N \(host.name)"
        }
        if host.localForwards.isEmpty && !host.remoteForwards.contains(where: \.isServedByEngine) && host.hasForwards {
            return "only DynamicForward, or RemoteForward kinds not supported yet (remote SOCKS, Unix sockets)\(place); nothing to bring up. Until then use: ssh -F \(file) -N \(host.name)"
        }
        if !host.pubkeyAuthentication {
            return "PubkeyAuthentication no\(place): public keys are the only authentication tunnel supports so far"
        }
        return nil
    }

    private enum Event: Sendable {
        case signal(Int32)
        case sessionEnded(String, TunnelError?)
    }

    private func connectedLine(_ host: HostConfig, _ tunnel: HostTunnel, _ info: SessionInfo) -> String {
        "connected to \(host.hostName):\(host.port) (\(info.hostKeyType) \(info.hostKeyFingerprint)), forwarding "
            + tunnel.forwardDescriptions.joined(separator: ", ")
    }

    private func warnAboutInactiveForwards(_ host: HostConfig, _ log: Logger) {
        // Printed as TUNNEL: FILE:LINE: warning: ..., like the config's own warnings.
        for spec in host.remoteForwards {
            if spec.isServedByEngine { continue }
            if spec.listenSocketPath != nil {
                // The server would open forwarded-streamlocal@openssh.com channels, which libssh2 cannot accept.
                log.warning("RemoteForward \(spec) listens on a Unix socket on the server, which libssh2 cannot serve (it cannot accept forwarded-streamlocal@openssh.com channels); skipped",
                            metadata: ["location": "\(spec.location)"])
            } else if case .socks = spec.target {
                log.warning("RemoteForward \(spec) (remote dynamic forwarding: a SOCKS proxy served from here) is not supported yet; ignored",
                            metadata: ["location": "\(spec.location)"])
            } else {
                log.warning("RemoteForward \(spec) to a Unix socket here is not supported yet; ignored", metadata: ["location": "\(spec.location)"])
            }
        }
        for spec in host.dynamicForwards {
            log.warning("DynamicForward \(spec) is not supported yet; ignored", metadata: ["location": "\(spec.location)"])
        }
    }
}

/// Turns SIGINT/SIGTERM into callbacks instead of process death, so shutdown can close things in order.
/// The sources are set once in init and DispatchSource is thread-safe, hence @unchecked.
final class SignalWatcher: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
