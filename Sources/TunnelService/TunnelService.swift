import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TunnelConfig
import TunnelEngine

/// What `tunnel up` runs: binds the chosen hosts' listeners, keeps each host's session up (reconnecting after every
/// loss), reports what happens, and runs until SIGINT/SIGTERM (clean stop, exit 0). Exit 1 only when no host could
/// be brought up at all (every one refused by its config or unable to bind its ports).
public final class TunnelService: Sendable {
    public let configPath: String
    public let hostNames: [String]
    private let logger: Logger
    private let passphrasePrompt: PassphrasePrompt?
    /// Where to serve Prometheus metrics (`--metrics`); nil: nowhere.
    private let metricsAddress: MetricsAddress?
    /// What each host is doing, from its events: read by the metrics endpoint.
    public let activity = HostActivity()

    /// `passphrasePrompt`: how to ask for the passphrases of encrypted keys (nil: never ask).
    public init(configPath: String, hostNames: [String] = [], logger: Logger, passphrasePrompt: PassphrasePrompt? = nil,
                metricsAddress: MetricsAddress? = nil) {
        self.configPath = configPath
        self.hostNames = hostNames
        self.logger = logger
        self.passphrasePrompt = passphrasePrompt
        self.metricsAddress = metricsAddress
    }

    public enum StartupError: Error, CustomStringConvertible {
        case config(ConfigErrors)
        case noTunnels(file: String)
        case unknownHosts([String], known: [String], file: String)
        case noForwards([String], file: String)
        case metrics(MetricsAddress, reason: String)

        public var description: String {
            switch self {
            case .config(let errors): return errors.description
            case .noTunnels(let file): return "\(file): no Host block with a LocalForward, RemoteForward or DynamicForward"
            case .unknownHosts(let names, let known, let file):
                let knownList = known.isEmpty ? "none" : known.joined(separator: ", ")
                return "\(file): no Host named \(names.joined(separator: ", ")) (known: \(knownList))"
            case .noForwards(let names, let file):
                return "\(file): \(names.joined(separator: ", ")) \(names.count == 1 ? "has" : "have") no LocalForward, RemoteForward or DynamicForward: nothing to bring up"
            case .metrics(let address, let reason): return "--metrics \(address): cannot listen: \(reason)"
            }
        }
    }

    /// Load the config and pick the hosts to bring up; warnings go to the log.
    public func plan() throws(StartupError) -> [HostConfig] {
        let hosts: [HostConfig]
        do throws(HostSelection.Failure) {
            hosts = try HostSelection.select(configPath: configPath, hostNames: hostNames, logger: logger)
        } catch {
            switch error {
            case .config(let errors): throw .config(errors)
            case .noTunnels: throw .noTunnels(file: configPath)
            case .unknownHosts(let names, let known): throw .unknownHosts(names, known: known, file: configPath)
            }
        }
        // Named hosts must have something to bring up (the unnamed case picks only hosts that do).
        let idle = hosts.filter { !$0.hasForwards }.map(\.name)
        guard idle.isEmpty else { throw .noForwards(idle, file: configPath) }
        return hosts
    }

    /// Run until stopped. Returns the process exit code.
    public func run() async throws(StartupError) -> Int32 {
        let hosts = try plan()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(System.coreCount, hosts.count)))
        let metricsServer: MetricsServer?
        do {
            metricsServer = try await startMetrics(on: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        let code = await run(hosts, on: group)
        await metricsServer?.stop()
        try? await group.shutdownGracefully()
        return code
    }

    private func run(_ hosts: [HostConfig], on group: MultiThreadedEventLoopGroup) async -> Int32 {
        let signalled = AsyncStream<Int32>.makeStream()
        // Every tunnel made so far, so a signal that arrives while listeners are still being bound stops them at
        // once instead of waiting for the rest of the start.
        // `stops`: the stops a signal started, awaited before returning: the caller shuts the event loops down next,
        // and a stop that reached a loop after that would leave its promise unfulfilled (a crash in debug builds).
        let started = NIOLockedValueBox((tunnels: [HostTunnel](), stopping: false, stops: [Task<Void, Never>]()))
        let signals = SignalWatcher(signals: [SIGINT, SIGTERM]) { number in
            signalled.continuation.yield(number)
            started.withLockedValue { state in
                state.stopping = true
                for tunnel in state.tunnels { state.stops.append(Task { await tunnel.stop() }) }
            }
        }
        defer { signals.cancel() }

        var running: [HostTunnel] = []
        var passphrases: [String: String] = [:]  // asked once per key file, whatever number of hosts use it
        // Passwords and keyboard-interactive answers are asked while sessions authenticate (on pool threads, maybe
        // several hosts at once, maybe while passphrases for the next host are asked here): one question at a time.
        let oneQuestionAtATime = NIOLock()
        var askSecret: (@Sendable (SecretRequest) -> String?)?
        if let prompt = passphrasePrompt {
            askSecret = { request in oneQuestionAtATime.withLock { prompt.ask(request) } }
        }
        for host in hosts {
            var log = logger
            log[metadataKey: "tunnel"] = "\(host.name)"
            log[metadataKey: "peer"] = "\(host.hostName):\(host.port)"
            if let reason = Self.unsupportedSetting(host) {
                log.error("\(reason)")
                continue
            }
            var settings = ConnectionSettings(host)
            if let passphrasePrompt {
                // Asked before connecting, one key at a time: a prompt must not race the sessions' output.
                // [ProxyJump] The jump hosts' keys too: each hop authenticates with its own.
                for path in ([settings] + settings.jumpHosts).flatMap(IdentityFiles.needingPassphrase) {
                    if passphrases[path] == nil {
                        passphrases[path] = oneQuestionAtATime.withLock { passphrasePrompt.ask(forKey: path) }
                    }
                }
                settings.passphrases = passphrases
                for index in settings.jumpHosts.indices { settings.jumpHosts[index].passphrases = passphrases }
            }
            settings.askSecret = askSecret
            for index in settings.jumpHosts.indices { settings.jumpHosts[index].askSecret = askSecret }
            let tunnel = HostTunnel(settings: settings, localForwards: host.localForwards,
                                    dynamicForwards: host.dynamicForwards,
                                    proxyCredentials: host.proxyAuth.map { ProxyCredentials(user: $0.user, password: $0.password) },
                                    eventLoop: group.next(), logger: logger)
            let stopping = started.withLockedValue { state in
                state.tunnels.append(tunnel)
                return state.stopping
            }
            if stopping { break }
            let report = SessionReport(host: host, tunnel: tunnel, log: log)
            activity.add(name: host.name, counters: tunnel.counters)
            do {
                // Returns once the listeners are bound; the session comes (and comes back) on its own.
                try await tunnel.keepUp { [activity] event in
                    report.tell(event)
                    activity.record(event, host: host.name)
                }
                running.append(tunnel)
                warnAboutInactiveForwards(host, log)
            } catch TunnelError.stopped {
                activity.remove(name: host.name)
                log.debug("stopped while starting")
            } catch {
                activity.remove(name: host.name)
                log.error("\(UserMessage.describe(error)); not brought up")
            }
        }
        let stoppedBySignal = started.withLockedValue { $0.stopping }
        if !stoppedBySignal, !running.isEmpty {
            // Runs until stopped: a session that ends is replaced, so only a signal ends this.
            for await number in signalled.stream {
                logger.notice("\(number == SIGINT ? "SIGINT" : "SIGTERM"): closing tunnels")
                break
            }
        } else if stoppedBySignal {
            logger.notice("stopped by a signal while starting")
        }
        await withTaskGroup(of: Void.self) { tasks in
            for tunnel in running { tasks.addTask { await tunnel.stop() } }
        }
        signals.cancel()
        for stop in started.withLockedValue({ $0.stops }) { await stop.value }
        return stoppedBySignal || !running.isEmpty ? 0 : 1
    }

    /// The Prometheus endpoint, before any host: a port that cannot be had is a startup error, like a forward's.
    private func startMetrics(on group: EventLoopGroup) async throws(StartupError) -> MetricsServer? {
        guard let metricsAddress else { return nil }
        do {
            let server = try await MetricsServer.start(at: metricsAddress, metrics: TunnelMetrics(activity: activity), group: group)
            logger.info("metrics at http://\(metricsAddress.host.contains(":") ? "[\(metricsAddress.host)]" : metricsAddress.host):\(server.port)/metrics")
            return server
        } catch {
            throw .metrics(metricsAddress, reason: UserMessage.describe(error))
        }
    }

    /// Settings this release parses but cannot honour, where going ahead would do something else than the user
    /// asked for (authenticate where every method is switched off), and hosts whose lines cannot be acted on.
    static func unsupportedSetting(_ host: HostConfig) -> String? {
        let place = host.location.map { " (Host at \($0))" } ?? ""
        let file = host.location?.file ?? "FILE"
        if let problem = host.problems.first {
            // The file is fine for the other hosts; this one has a line that cannot be acted on.
            let more = host.problems.count > 1 ? " (and \(host.problems.count - 1) more problem\(host.problems.count > 2 ? "s" : ""); see tunnel check)" : ""
            return "\(problem)\(more); not brought up"
        }
        if let problem = host.jumpChainProblem {
            // Never connect directly instead of through the jump hosts.
            return "\(problem); not brought up"
        }
        if host.localForwards.isEmpty && host.dynamicForwards.isEmpty && !host.remoteForwards.contains(where: \.isServedByEngine) && host.hasForwards {
            return "only RemoteForward kinds not supported yet (Unix sockets)\(place); nothing to bring up. Until then use: ssh -F \(file) -N \(host.name)"
        }
        if ConnectionSettings(host).authenticationMethods.isEmpty {
            return "no authentication method left\(place): tunnel does publickey, keyboard-interactive and password, "
                + "and PreferredAuthentications, PubkeyAuthentication, KbdInteractiveAuthentication, PasswordAuthentication "
                + "and NumberOfPasswordPrompts rule them all out; not brought up"
        }
        return nil
    }

    private func warnAboutInactiveForwards(_ host: HostConfig, _ log: Logger) {
        // Printed as TUNNEL: FILE:LINE: warning: ..., like the config's own warnings.
        for spec in host.remoteForwards {
            if spec.isServedByEngine { continue }
            if spec.listenSocketPath != nil {
                // The server would open forwarded-streamlocal@openssh.com channels, which libssh2 cannot accept.
                log.warning("RemoteForward \(spec) listens on a Unix socket on the server, which libssh2 cannot serve (it cannot accept forwarded-streamlocal@openssh.com channels); skipped",
                            metadata: ["location": "\(spec.location)"])
            } else {
                log.warning("RemoteForward \(spec) to a Unix socket here is not supported yet; ignored", metadata: ["location": "\(spec.location)"])
            }
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
