import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import TunnelConfig
import TunnelEngine

/// What `tunnel up` runs: binds the chosen hosts' listeners, keeps each host's session up (reconnecting after every
/// loss), reports what happens, and runs until SIGINT/SIGTERM (clean stop, exit 0). Exit 1 only when no host could
/// be brought up at all (every one refused by its config or unable to bind its ports).
public final class TunnelService: Sendable {
    public let configPath: String
    public let hostNames: [String]
    /// The control socket (`ControlSocketPath.defaultPath()` unless `--control`).
    public let controlPath: String
    /// How long open connections get to finish after SIGTERM/SIGINT before they are closed.
    public let drainTime: Double
    private let logger: Logger
    private let passphrasePrompt: PassphrasePrompt?
    /// Where to serve Prometheus metrics (`--metrics`); nil: nowhere.
    private let metricsAddress: MetricsAddress?
    /// What each host is doing, from its events: read by the metrics endpoint.
    public let activity = HostActivity()

    /// `passphrasePrompt`: how to ask for the passphrases of encrypted keys (nil: never ask).
    public init(configPath: String, hostNames: [String] = [], controlPath: String = ControlSocketPath.defaultPath(),
                drainTime: Double = 5, logger: Logger, passphrasePrompt: PassphrasePrompt? = nil,
                metricsAddress: MetricsAddress? = nil) {
        self.configPath = configPath
        self.hostNames = hostNames
        self.controlPath = controlPath
        self.drainTime = drainTime
        self.logger = logger
        self.passphrasePrompt = passphrasePrompt
        self.metricsAddress = metricsAddress
    }

    public enum StartupError: Error, CustomStringConvertible {
        case config(ConfigErrors)
        case noTunnels(file: String)
        case unknownHosts([String], known: [String], file: String)
        case noForwards([String], file: String)
        case control(ControlSocketError)
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
            case .control(let error): return error.description
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

    /// Run until stopped (SIGINT/SIGTERM, or `tunnel down`). Returns the process exit code.
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
        let result: Result<Int32, StartupError>
        do throws(StartupError) {
            result = .success(try await run(hosts, on: group))
        } catch {
            result = .failure(error)
        }
        await metricsServer?.stop()
        try? await group.shutdownGracefully()
        return try result.get()
    }

    private func run(_ hosts: [HostConfig], on group: MultiThreadedEventLoopGroup) async throws(StartupError) -> Int32 {
        let supervisor = TunnelSupervisor(configPath: configPath, hostNames: hostNames, group: group, logger: logger,
                                          passphrasePrompt: passphrasePrompt, activity: activity)
        let run = ServiceRun(supervisor: supervisor, hosts: hosts, drainTime: drainTime, notifier: SystemdNotifier(), logger: logger)
        let control: ControlServer
        do {
            control = try await ControlServer.start(path: controlPath, group: group, logger: logger) { command in
                await run.answer(command)
            }
        } catch {
            throw .control(error)
        }
        logger.info("control socket: \(controlPath)")
        // Which ciphers a session can get depends on the linked libssh2: say which one it is, and what it lacks.
        logger.debug("\(EngineInfo.sshLibrary.replacingOccurrences(of: "\n  ", with: "; "))")
        let services = ServiceGroup(configuration: .init(
            services: [.init(service: run, successTerminationBehavior: .gracefullyShutdownGroup,
                             failureTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "tunnel.lifecycle") { _ in SwiftLogNoOpLogHandler() }))
        do {
            try await services.run()
        } catch {
            logger.error("\(error)")
        }
        await control.close()
        return run.exitCode
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
        if let problem = host.algorithmProblem {
            // Connecting with some other list than the one written would not be what the user asked for.
            return "\(problem); not brought up"
        }
        if let problem = host.jumpChainProblem {
            // Never connect directly instead of through the jump hosts.
            return "\(problem); not brought up"
        }
        if let problem = host.proxyCommandProblem {
            // Never connect directly instead of through the command.
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

    static func warnAboutInactiveForwards(_ host: HostConfig, _ log: Logger) {
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
        // Ciphers/MACs/... naming algorithms the linked libssh2 lacks: those names are dropped.
        for warning in AlgorithmCheck.problems([host]).warnings {
            log.warning("\(warning.message)", metadata: warning.location.map { ["location": "\($0)"] } ?? [:])
        }
    }
}

