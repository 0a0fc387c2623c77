import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import TunnelConfig
import UnixSignals

/// `tunnel up` as a swift-service-lifecycle `Service`: brings the hosts up, answers the control socket, reloads on
/// SIGHUP, keeps systemd told (sd_notify), and on SIGTERM/SIGINT (the `ServiceGroup`'s graceful shutdown) or
/// `tunnel down` stops gracefully: listeners close first, open connections get `drainTime` to finish (a second
/// signal cuts that short), then everything closes.
final class ServiceRun: Service, Sendable {
    private let supervisor: TunnelSupervisor
    private let hosts: [HostConfig]
    private let drainTime: Double
    private let notifier: SystemdNotifier?
    private let logger: Logger
    /// Why the run should end; the first reason wins.
    private let stopRequests = AsyncStream<StopReason>.makeStream()
    private let state = NIOLockedValueBox((exitCode: Int32(0), signals: 0))

    enum StopReason { case signal, down }

    init(supervisor: TunnelSupervisor, hosts: [HostConfig], drainTime: Double, notifier: SystemdNotifier?, logger: Logger) {
        self.supervisor = supervisor
        self.hosts = hosts
        self.drainTime = drainTime
        self.notifier = notifier
        self.logger = logger
    }

    var exitCode: Int32 { state.withLockedValue { $0.exitCode } }

    func run() async throws {
        // Counted from the start: the ServiceGroup sees the first signal and starts the graceful shutdown; a second
        // one here cuts the connections' drain short.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint, .sighup)
        let signalTask = Task { [state, logger] in
            for await signal in signals {
                if signal == .sighup {
                    logger.notice("SIGHUP: reloading the config")
                    _ = await self.reload()
                    continue
                }
                let count = state.withLockedValue { $0.signals += 1; return $0.signals }
                if count == 1 { logger.notice("\(signal == .sigint ? "SIGINT" : "SIGTERM"): closing tunnels") }
                if count >= 2 { logger.notice("second signal: closing open connections now") }
            }
        }
        defer { signalTask.cancel() }

        await supervisor.start(hosts)
        guard await supervisor.runningCount > 0 else {
            state.withLockedValue { $0.exitCode = 1 }
            return
        }
        let reporter = notifier.map { notifier in Task { await SystemdReporter(notifier: notifier, supervisor: supervisor).run() } }
        defer { reporter?.cancel() }

        let reason = await withGracefulShutdownHandler {
            var iterator = stopRequests.stream.makeAsyncIterator()
            return await iterator.next() ?? .signal
        } onGracefulShutdown: { [stopRequests] in
            stopRequests.continuation.yield(.signal)
        }
        if reason == .down { logger.notice("tunnel down: closing tunnels") }
        reporter?.cancel()
        notifier?.notify("STOPPING=1")
        await supervisor.stopAccepting()
        await drain()
        await supervisor.stopAll()
    }

    /// Let open connections finish, up to `drainTime` (or until a second signal).
    private func drain() async {
        let deadline = Date(timeIntervalSinceNow: drainTime)
        var open = await supervisor.activeConnections()
        if open > 0 { logger.notice("waiting up to \(SessionReport.seconds(drainTime)) for \(open) open connection\(open == 1 ? "" : "s")") }
        while open > 0, Date() < deadline, state.withLockedValue({ $0.signals }) < 2 {
            try? await Task.sleep(for: .milliseconds(50))
            open = await supervisor.activeConnections()
        }
        if open > 0 { logger.notice("closing \(open) connection\(open == 1 ? "" : "s") still open") }
    }

    /// A control request.
    func answer(_ command: ControlCommand) async -> ControlReply {
        switch command {
        case .status:
            return ControlReply(ok: true, status: await supervisor.status())
        case .down(let names) where names.isEmpty:
            stopRequests.continuation.yield(.down)
            return ControlReply(ok: true, changes: ["all hosts: stopping; the process exits"])
        case .down(let names):
            let reply = await supervisor.down(names)
            if reply.ok, await supervisor.runningCount == 0, await supervisor.status().hosts.isEmpty {
                // Nothing left to keep up: the process ends as `tunnel down` without names would.
                stopRequests.continuation.yield(.down)
            }
            return reply
        case .reload:
            return await reload()
        }
    }

    private func reload() async -> ControlReply {
        notifier?.notify(SystemdNotifier.reloadingMessage())
        let reply = await supervisor.reload()
        notifier?.notify("READY=1")
        return reply
    }
}

/// Keeps systemd told: READY=1 once every host has had its first attempt (up, or failed and retrying: systemd must
/// not wait out its start timeout for a server that is down), STATUS= a one-line summary whenever it changes, and
/// WATCHDOG=1 at half of WATCHDOG_USEC.
struct SystemdReporter {
    let notifier: SystemdNotifier
    let supervisor: TunnelSupervisor

    func run() async {
        var ready = false
        var lastStatus = ""
        let watchdog = SystemdNotifier.watchdogInterval().map { $0 / 2 }
        var nextPing = Date()
        while !Task.isCancelled {
            let report = await supervisor.status()
            let summary = Self.summary(report)
            var message: [String] = []
            if !ready, report.hosts.allSatisfy({ $0.state != "connecting" }) {
                ready = true
                message.append("READY=1")
            }
            if summary != lastStatus {
                lastStatus = summary
                message.append("STATUS=\(summary)")
            }
            if let watchdog, Date() >= nextPing {
                message.append("WATCHDOG=1")
                nextPing = Date(timeIntervalSinceNow: watchdog)
            }
            if !message.isEmpty { notifier.notify(message.joined(separator: "\n")) }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// "2 of 3 hosts up; db: reconnecting", one line.
    static func summary(_ report: StatusReport) -> String {
        let up = report.hosts.filter { $0.state == "up" }.count
        var text = "\(up) of \(report.hosts.count) host\(report.hosts.count == 1 ? "" : "s") up"
        let others = report.hosts.filter { $0.state != "up" }.map { "\($0.name): \($0.state)" }
        if !others.isEmpty { text += "; " + others.joined(separator: ", ") }
        return text
    }
}
