import Foundation
import Logging
import TunnelConfig
import TunnelEngine

/// Turns one host's session events into log lines: each change said once, with the reason and the next retry
/// (`db: connection lost (no reply to 3 keepalives in 45 s); retrying in 1.3 s`); a host that keeps failing for
/// the same reason is quiet between reminders (`OutageReport` decides which).
struct SessionReport: Sendable {
    let host: HostConfig
    let tunnel: HostTunnel
    let log: Logger

    func tell(_ event: TunnelEvent) {
        switch event {
        case .connected(let info, let reconnected):
            let forwards = tunnel.forwardDescriptions.joined(separator: ", ")
            // [ProxyJump] "connected to db.internal:22 via bastion (...)".
            let via = host.jumpChain.isEmpty ? "" : " via \(host.jumpChain.map(\.name).joined(separator: ", "))"
            log.notice("\(reconnected ? "reconnected" : "connected") to \(host.hostName):\(host.port)\(via) (\(info.hostKeyType) \(info.hostKeyFingerprint)), forwarding \(forwards)")
            log.debug("negotiated \(info.algorithms.summary)")
        case .sessionLost(let reason, let retryIn):
            log.warning("connection lost (\(Self.lossReason(reason))); retrying in \(Self.seconds(retryIn))")
        case .attemptFailed(let reason, let retryIn, let report):
            switch report {
            case .news:
                log.error("\(UserMessage.describe(reason)); retrying in \(Self.seconds(retryIn))")
            case .reminder:
                log.warning("still failing: \(reason); retrying in \(Self.seconds(retryIn))")
            case .repeated:
                log.debug("still failing: \(reason); retrying in \(Self.seconds(retryIn))")
            }
        case .needsAuthentication(let reason):
            log.error("needs authentication: \(UserMessage.describe(reason)); not retrying until tunnel is restarted")
        }
    }

    /// "the server closed the connection", "no reply to 3 keepalives in 45 s": the loss without its prefix.
    static func lossReason(_ error: TunnelError) -> String {
        let text = UserMessage.describe(error)
        let prefix = "connection lost: "
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    /// "1.3 s", "42 s".
    static func seconds(_ value: Double) -> String {
        value < 10 ? String(format: "%.1f s", value) : "\(Int(value.rounded())) s"
    }
}
