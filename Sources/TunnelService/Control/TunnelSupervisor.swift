import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TunnelConfig
import TunnelEngine

/// The hosts a running `tunnel up` keeps up, by name, and the changes the control socket asks for: status, down,
/// reload. An actor, and more: an actor lets another call in at every `await`, so the calls that change what runs
/// (start, down, reload, shutdown) also take turns through `exclusively`, one whole call at a time; status does not
/// wait for them.
actor TunnelSupervisor {
    /// One host of the config, and what became of it.
    private struct Entry {
        var config: HostConfig
        /// Why it is not running: refused by its config, or its ports could not be bound.
        enum Outcome {
            case running(HostTunnel)
            case notStarted(reason: String)
        }
        var outcome: Outcome
    }

    let configPath: String
    private let hostNames: [String]
    private let group: EventLoopGroup
    private let logger: Logger
    private let passphrasePrompt: PassphrasePrompt?
    private let askSecret: (@Sendable (SecretRequest) -> String?)?
    private let oneQuestionAtATime: NIOLock
    private var passphrases: [String: String] = [:]  // asked once per key file, whatever number of hosts use it
    private var entries: [Entry] = []
    /// Whether a changing call holds the turn, and the calls waiting for it, first come first served.
    private var busy = false
    private var waitingForTurn: [CheckedContinuation<Void, Never>] = []
    /// Graceful shutdown has begun: a reload that was waiting (or comes now) must not bind anything new.
    private var shuttingDown = false
    /// What the metrics endpoint reads: each running host is added, and removed when it goes.
    private let activity: HostActivity
    let startedAt = Date()

    init(configPath: String, hostNames: [String], group: EventLoopGroup, logger: Logger, passphrasePrompt: PassphrasePrompt?,
         activity: HostActivity) {
        self.activity = activity
        self.configPath = configPath
        self.hostNames = hostNames
        self.group = group
        self.logger = logger
        self.passphrasePrompt = passphrasePrompt
        // Passwords and keyboard-interactive answers are asked while sessions authenticate (on pool threads, maybe
        // several hosts at once, maybe while passphrases for the next host are asked here): one question at a time.
        let lock = NIOLock()
        oneQuestionAtATime = lock
        if let prompt = passphrasePrompt {
            askSecret = { @Sendable (request: SecretRequest) -> String? in lock.withLock { prompt.ask(request) } }
        } else {
            askSecret = nil
        }
    }

    /// How many hosts are running (bound, keeping a session up).
    var runningCount: Int { entries.filter { if case .running = $0.outcome { return true } else { return false } }.count }

    /// Bring each host up in order (returns once their listeners are bound; sessions come on their own).
    func start(_ hosts: [HostConfig]) async {
        await exclusively {
            for host in hosts where !shuttingDown { entries.append(await bringUp(host, mayAsk: true)) }
        }
    }

    /// Run `body` when no other changing call is running. Without this, two reloads (or a reload and `down`) would
    /// interleave at their awaits and the last to finish would write back an `entries` taken before the other's
    /// changes: a tunnel left running that nothing lists or stops.
    private func exclusively<T>(_ body: () async -> T) async -> T {
        if busy {
            await withCheckedContinuation { waitingForTurn.append($0) }  // the turn is handed over, `busy` stays set
        } else {
            busy = true
        }
        let result = await body()
        if waitingForTurn.isEmpty { busy = false } else { waitingForTurn.removeFirst().resume() }
        return result
    }

    /// `mayAsk`: passphrases not asked yet may be asked for now (at start). Not during a reload: the question would
    /// hold this actor, and with it status, down and shutdown, until someone answers; a host whose key needs an
    /// answer nobody gave then reports that it needs authentication.
    private func bringUp(_ host: HostConfig, mayAsk: Bool) async -> Entry {
        var log = logger
        log[metadataKey: "tunnel"] = "\(host.name)"
        log[metadataKey: "peer"] = "\(host.hostName):\(host.port)"
        if let reason = TunnelService.unsupportedSetting(host) {
            log.error("\(reason)")
            return Entry(config: host, outcome: .notStarted(reason: reason))
        }
        var settings = ConnectionSettings(host)
        if mayAsk, let passphrasePrompt {
            // Asked before connecting, one key at a time: a prompt must not race the sessions' output.
            // [ProxyJump] The jump hosts' keys too: each hop authenticates with its own.
            for path in ([settings] + settings.jumpHosts).flatMap(IdentityFiles.needingPassphrase) where passphrases[path] == nil {
                passphrases[path] = oneQuestionAtATime.withLock { passphrasePrompt.ask(forKey: path) }
            }
        }
        // The passphrases given so far (at start), whether or not any was asked for now.
        settings.passphrases = passphrases
        for index in settings.jumpHosts.indices { settings.jumpHosts[index].passphrases = passphrases }
        settings.askSecret = askSecret
        for index in settings.jumpHosts.indices { settings.jumpHosts[index].askSecret = askSecret }
        let tunnel = HostTunnel(settings: settings, localForwards: host.localForwards, dynamicForwards: host.dynamicForwards,
                                proxyCredentials: host.proxyAuth.map { ProxyCredentials(user: $0.user, password: $0.password) },
                                eventLoop: group.next(), logger: logger)
        let report = SessionReport(host: host, tunnel: tunnel, log: log)
        activity.add(name: host.name, counters: tunnel.counters, forwards: { tunnel.status.forwards },
                     sessions: { let status = tunnel.status; return (status.sessionsUp, status.sessionsWanted) })
        do {
            // Returns once the listeners are bound; the session comes (and comes back) on its own.
            try await tunnel.keepUp { [activity] event in
                report.tell(event)
                activity.record(event, host: host.name)
            }
            TunnelService.warnAboutInactiveForwards(host, log)
            return Entry(config: host, outcome: .running(tunnel))
        } catch {
            activity.remove(name: host.name)
            let reason = UserMessage.describe(error)
            log.error("\(reason); not brought up")
            return Entry(config: host, outcome: .notStarted(reason: reason))
        }
    }

    // MARK: - Status

    func status() -> StatusReport {
        let hosts = entries.map { entry -> HostStatus in
            let server = "\(entry.config.hostName):\(entry.config.port)"
            switch entry.outcome {
            case .running(let tunnel):
                return HostStatus(tunnel.status, server: server)
            case .notStarted(let reason):
                var status = HostStatus(name: entry.config.name, state: "failed", server: server)
                status.reason = reason
                status.lastError = reason
                return status
            }
        }
        return StatusReport(pid: getpid(), config: configPath, startedAt: startedAt, hosts: hosts)
    }

    // MARK: - Down

    /// Stop the named hosts (each its listeners, connections and session). Unknown names: nothing is stopped.
    func down(_ names: [String]) async -> ControlReply {
        await exclusively { await downNow(names) }
    }

    private func downNow(_ names: [String]) async -> ControlReply {
        let known = entries.map(\.config.name)
        let unknown = names.filter { !known.contains($0) }
        guard unknown.isEmpty else {
            return .failure("no running host named \(unknown.joined(separator: ", ")) (running: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        let stopping = entries.filter { names.contains($0.config.name) }
        entries.removeAll { names.contains($0.config.name) }
        await stop(stopping)
        return ControlReply(ok: true, changes: stopping.map { "\($0.config.name): stopped" })
    }

    /// Close every host's listeners, so nothing new is accepted (graceful shutdown's first step).
    func stopAccepting() async {
        shuttingDown = true
        await exclusively { await closeListeners() }
    }

    private func closeListeners() async {
        await withTaskGroup(of: Void.self) { tasks in
            for case .running(let tunnel) in entries.map(\.outcome) { tasks.addTask { await tunnel.closeListeners() } }
        }
    }

    /// Connections still open over all hosts.
    func activeConnections() -> Int {
        entries.reduce(0) { sum, entry in
            guard case .running(let tunnel) = entry.outcome else { return sum }
            return sum + tunnel.counters.snapshot.connectionsActive
        }
    }

    func stopAll() async {
        shuttingDown = true
        await exclusively {
            let all = entries
            entries = []
            await stop(all)
        }
    }

    private func stop(_ stopping: [Entry]) async {
        for entry in stopping { activity.remove(name: entry.config.name) }
        await withTaskGroup(of: Void.self) { tasks in
            for case .running(let tunnel) in stopping.map(\.outcome) { tasks.addTask { await tunnel.stop() } }
        }
    }

    // MARK: - Reload

    /// Re-read the config file. A file with errors changes nothing and its `FILE:LINE` errors go back to the caller;
    /// otherwise `ReloadPlan` decides, host by host.
    func reload() async -> ControlReply {
        await exclusively {
            guard !shuttingDown else { return .failure("tunnel is shutting down; nothing reloaded") }
            return await reloadNow()
        }
    }

    private func reloadNow() async -> ControlReply {
        let wanted: [HostConfig]
        do throws(HostSelection.Failure) {
            wanted = try HostSelection.select(configPath: configPath, hostNames: hostNames, logger: logger)
        } catch {
            let message: String
            var lines: [String] = []
            switch error {
            case .config(let errors):
                lines = errors.errors.map { problem in problem.location.map { "\($0): \(problem.message)" } ?? problem.message }
                message = "\(configPath): \(lines.count) error\(lines.count == 1 ? "" : "s"); nothing changed"
            case .noTunnels:
                message = "\(configPath): no Host block with a LocalForward, RemoteForward or DynamicForward; nothing changed"
            case .unknownHosts(let names, _):
                message = "\(configPath): no Host named \(names.joined(separator: ", ")) any more; nothing changed"
            }
            logger.error("reload rejected: \(message)")
            for line in lines { logger.error("reload rejected: \(line)") }
            return .failure(message, errors: lines)
        }
        var plan = ReloadPlan(running: entries.map(\.config), wanted: wanted)
        // A host that never came up has no session to keep: a change to its forwards brings it up afresh.
        for change in plan.forwardsChanged where !isRunning(change.host) { plan.changed.append(change.host) }
        plan.forwardsChanged.removeAll { !isRunning($0.host) }
        let goes = Set(plan.removed + plan.changed)
        let leaving = entries.filter { goes.contains($0.config.name) }
        entries.removeAll { goes.contains($0.config.name) }
        // Stopped first, so a changed host can bind its ports again and a new host can take a removed one's.
        await stop(leaving)
        var problems: [String] = []
        for change in plan.forwardsChanged {
            guard let host = wanted.first(where: { $0.name == change.host }) else { continue }
            problems += await changeForwards(change, to: host)
        }
        var byName = Dictionary(entries.map { ($0.config.name, $0) }, uniquingKeysWith: { first, _ in first })
        for host in wanted where plan.added.contains(host.name) || plan.changed.contains(host.name) {
            byName[host.name] = await bringUp(host, mayAsk: false)
        }
        // The file's order, as the status table shows it.
        entries = wanted.compactMap { byName[$0.name] }
        for line in plan.lines where !line.hasSuffix(": unchanged") { logger.notice("reload: \(line)") }
        logger.notice("reloaded \(configPath): \(plan.added.count) added, \(plan.removed.count) removed, \(plan.changed.count) restarted, \(plan.forwardsChanged.count) with forwards changed, \(plan.unchanged.count) unchanged")
        return ControlReply(ok: true, changes: plan.lines + problems)
    }

    private func isRunning(_ name: String) -> Bool {
        entries.contains { entry in
            guard entry.config.name == name, case .running = entry.outcome else { return false }
            return true
        }
    }

    /// A running host whose only change is its listening forwards: close the removed ones, bind the added ones,
    /// on the same tunnel (its session and the other forwards' open connections stay). A forward that cannot be
    /// bound (its port is taken) is left out of the host's recorded config, so the next reload tries it again;
    /// the returned lines say why.
    private func changeForwards(_ change: ReloadPlan.ForwardChanges, to host: HostConfig) async -> [String] {
        guard let entry = entries.first(where: { $0.config.name == host.name }), case .running(let tunnel) = entry.outcome else { return [] }
        var log = logger
        log[metadataKey: "tunnel"] = "\(host.name)"
        log[metadataKey: "peer"] = "\(host.hostName):\(host.port)"
        // Removed first: a forward changed in place (same port, new target) is a removal and an addition.
        await tunnel.removeForwards(local: change.removedLocal, dynamic: change.removedDynamic)
        // Remote forwards the engine cannot serve were never asked for (`ConnectionSettings`): nothing to do for them
        // but the warning a start gives.
        await tunnel.removeForwards(remote: change.removedRemote.filter(\.isServedByEngine))
        for spec in change.addedRemote where spec.isServedByEngine { await tunnel.addForward(spec) }
        var unserved = host
        unserved.remoteForwards = change.addedRemote.filter { !$0.isServedByEngine }
        TunnelService.warnAboutInactiveForwards(unserved, log)
        var config = host
        var problems: [String] = []
        for spec in change.addedLocal {
            do {
                try await tunnel.addForward(spec)
            } catch {
                let line = "\(host.name): LocalForward \(spec) not added: \(UserMessage.describe(error))"
                log.error("\(line)")
                problems.append(line)
                config.localForwards.removeAll { $0 == spec }
            }
        }
        for spec in change.addedDynamic {
            do {
                try await tunnel.addForward(spec)
            } catch {
                let line = "\(host.name): DynamicForward \(spec) not added: \(UserMessage.describe(error))"
                log.error("\(line)")
                problems.append(line)
                config.dynamicForwards.removeAll { $0 == spec }
            }
        }
        if let index = entries.firstIndex(where: { $0.config.name == host.name }) { entries[index].config = config }
        return problems
    }
}
