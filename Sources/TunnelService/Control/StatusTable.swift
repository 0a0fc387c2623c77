import Foundation

/// `tunnel status` for people: per host one line with its state, one with the server's identity and the
/// negotiated algorithms when up, then its forwards as a table. Every line fits 100 columns (long names are cut
/// with "…"). Pure: the caller supplies the time and, for `--watch`, the throughput.
public enum StatusTable {
    public static let width = 100

    /// Bytes per second in and out, by `rateKey`.
    public typealias Rates = [String: (inPerSecond: Double, outPerSecond: Double)]

    public static func rateKey(host: String, forward: ForwardStatus) -> String { "\(host)\u{0}\(forward.kind)\u{0}\(forward.listen)" }

    public static func render(_ report: StatusReport, now: Date, rates: Rates? = nil) -> String {
        var lines: [String] = []
        if report.hosts.isEmpty { lines.append("no hosts running (config \(report.config), pid \(report.pid))") }
        for host in report.hosts {
            lines.append(hostLine(host, now: now))
            if host.state == "up", let type = host.hostKeyType, let fingerprint = host.hostKeyFingerprint {
                let cipher = eachWay(host.cipherOut, host.cipherIn)
                let mac = eachWay(host.macOut, host.macIn)
                let key = "  \(type) \(fingerprint)", algorithms = "cipher \(cipher), MAC \(mac)"
                // One line when it fits, else the algorithms on their own line: nothing of either is cut.
                if key.count + 2 + algorithms.count <= width {
                    lines.append("\(key)  \(algorithms)")
                } else {
                    lines.append(key)
                    lines.append("  \(algorithms)")
                }
            }
            if let lastError = host.lastError, host.state == "up" || host.state == "connecting" {
                lines.append("  last error: \(lastError)")
            }
            guard !host.forwards.isEmpty else { continue }
            lines.append(forwardHeader(withRates: rates != nil))
            for forward in host.forwards {
                let rate = rates?[rateKey(host: host.name, forward: forward)]
                lines.append(forwardLine(forward, rates: rates != nil, rate: rate))
            }
        }
        return lines.map(fit).joined(separator: "\n") + "\n"
    }

    static func hostLine(_ host: HostStatus, now: Date) -> String {
        let reconnects = "\(host.reconnects) reconnect\(host.reconnects == 1 ? "" : "s")"
        // The host's totals; the forward rows below break them down.
        let totals = "\(host.activeConnections)/\(host.totalConnections) conns, in \(bytes(host.bytesIn)), out \(bytes(host.bytesOut))"
        switch host.state {
        case "up":
            var since = host.since.map { "up \(duration(now.timeIntervalSince($0)))" } ?? "up"
            if let up = host.sessionsUp, let wanted = host.sessionsWanted { since += " (\(up)/\(wanted) sessions)" }
            return "\(host.name): \(since), \(host.server), \(reconnects), \(totals)"
        case "reconnecting", "failed", "needs-authentication":
            let retry = host.nextRetry.map { ", next try in \(duration(max(0, $0.timeIntervalSince(now))))" } ?? ""
            return "\(host.name): \(host.state) (\(host.reason ?? "unknown reason"))\(retry), \(host.server), \(reconnects)"
        case "connecting":
            return "\(host.name): \(host.state), \(host.server), \(reconnects), \(totals)"
        default:
            return "\(host.name): \(host.state), \(host.server), \(reconnects)"
        }
    }

    // Column widths: the forward, then ACTIVE, TOTAL, IN, OUT, FAILED (and IN/s, OUT/s with --watch).
    static let forwardWidth = 40
    static let forwardWidthWithRates = 30

    static func forwardHeader(withRates: Bool) -> String {
        var line = "  " + pad("FORWARD", withRates ? forwardWidthWithRates : forwardWidth)
            + right("ACTIVE", 7) + right("TOTAL", 7) + right("IN", 10) + right("OUT", 10) + right("FAILED", 7)
        if withRates { line += right("IN/s", 10) + right("OUT/s", 10) }
        return line
    }

    static func forwardLine(_ forward: ForwardStatus, rates: Bool, rate: (inPerSecond: Double, outPerSecond: Double)?) -> String {
        let name = "\(forward.listen) -> \(forward.target)"
        var line = "  " + pad(cut(name, rates ? forwardWidthWithRates - 1 : forwardWidth - 1), rates ? forwardWidthWithRates : forwardWidth)
            + right("\(forward.activeConnections)", 7) + right("\(forward.totalConnections)", 7)
            + right(bytes(forward.bytesIn), 10) + right(bytes(forward.bytesOut), 10) + right("\(forward.openFailures)", 7)
        if rates {
            line += right(rate.map { bytes(Int($0.inPerSecond)) } ?? "-", 10) + right(rate.map { bytes(Int($0.outPerSecond)) } ?? "-", 10)
        }
        return line
    }

    /// "aes128-ctr" when both ways agree, else "aes128-ctr/aes256-ctr" (out/in).
    static func eachWay(_ out: String?, _ incoming: String?) -> String {
        let a = out ?? "?", b = incoming ?? "?"
        return a == b ? a : "\(a)/\(b)"
    }

    /// "950 B", "1.2 KiB", "3.4 MiB", "1.0 GiB".
    public static func bytes(_ count: Int) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB"]
        guard count >= 1024 else { return "\(count) B" }
        var value = Double(count) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f %@", value, units[unit])
    }

    /// "42s", "3m05s", "2h07m", "3d04h".
    public static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.down))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return String(format: "%dm%02ds", total / 60, total % 60) }
        if total < 86400 { return String(format: "%dh%02dm", total / 3600, (total % 3600) / 60) }
        return String(format: "%dd%02dh", total / 86400, (total % 86400) / 3600)
    }

    static func cut(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }

    static func fit(_ line: String) -> String { cut(line, width) }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func right(_ text: String, _ width: Int) -> String {
        text.count >= width ? " " + text : String(repeating: " ", count: width - text.count) + text
    }

    /// Throughput between two reports taken `interval` seconds apart.
    public static func rates(from old: StatusReport, to new: StatusReport, interval: Double) -> Rates {
        guard interval > 0 else { return [:] }
        var before: [String: ForwardStatus] = [:]
        for host in old.hosts { for forward in host.forwards { before[rateKey(host: host.name, forward: forward)] = forward } }
        var rates: Rates = [:]
        for host in new.hosts {
            for forward in host.forwards {
                let key = rateKey(host: host.name, forward: forward)
                guard let previous = before[key] else { continue }
                rates[key] = (Double(max(0, forward.bytesIn - previous.bytesIn)) / interval,
                              Double(max(0, forward.bytesOut - previous.bytesOut)) / interval)
            }
        }
        return rates
    }
}
