import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus
import TunnelEngine

/// One value the metrics endpoint reports: a swift-metrics name, its labels (dimensions) and the value now.
/// Counters are totals since start (the exporter turns them into increments); gauges are the value as it is.
struct MetricSample: Sendable, Equatable {
    enum Kind: Sendable { case counter, gauge }
    let name: String
    let kind: Kind
    let labels: [String: String]
    let value: Int

    /// Every series `hosts` give, in a stable order: per host (label `host`), then per forward (labels `host` and
    /// `forward`, the forward's stable id such as "L127.0.0.1:5432"). The per-forward series have names of their
    /// own (`tunnel_forward_...`) rather than an extra label on the host's: a `sum()` over one name then never
    /// counts the same bytes twice.
    static func samples(_ hosts: [HostActivity.Host]) -> [MetricSample] {
        var out: [MetricSample] = []
        for host in hosts {
            let labels = ["host": host.name]
            let c = host.counters.snapshot
            func counter(_ name: String, _ value: Int) { out.append(MetricSample(name: name, kind: .counter, labels: labels, value: value)) }
            func gauge(_ name: String, _ value: Int, _ extra: [String: String] = [:]) {
                out.append(MetricSample(name: name, kind: .gauge, labels: labels.merging(extra) { $1 }, value: value))
            }
            counter("tunnel_bytes_sent_total", c.bytesSent)
            counter("tunnel_bytes_received_total", c.bytesReceived)
            counter("tunnel_connections_total", c.connectionsAccepted)
            gauge("tunnel_connections_active", c.connectionsActive)
            counter("tunnel_channel_open_failures_total", c.channelOpenFailures)
            counter("tunnel_sessions_total", c.sessionsEstablished)
            counter("tunnel_reconnects_total", host.reconnects)
            counter("tunnel_session_attempt_failures_total", host.failedAttempts)
            counter("tunnel_keepalives_sent_total", c.keepalivesSent)
            gauge("tunnel_up", host.state == .up ? 1 : 0)
            let sessions = host.sessions()
            gauge("tunnel_sessions_up", sessions.up)
            gauge("tunnel_sessions_wanted", sessions.wanted)
            // One series per state, 1 for the current one: the usual Prometheus way to export an enum.
            for state in HostActivity.State.allCases {
                gauge("tunnel_state", host.state == state ? 1 : 0, ["state": state.rawValue])
            }
        }
        for host in hosts {
            for forward in host.forwards() {
                let labels = ["host": host.name, "forward": forward.id]
                let f = forward.counts
                func counter(_ name: String, _ value: Int) { out.append(MetricSample(name: name, kind: .counter, labels: labels, value: value)) }
                counter("tunnel_forward_bytes_sent_total", f.bytesSent)
                counter("tunnel_forward_bytes_received_total", f.bytesReceived)
                counter("tunnel_forward_connections_total", f.connectionsAccepted)
                out.append(MetricSample(name: "tunnel_forward_connections_active", kind: .gauge, labels: labels, value: f.connectionsActive))
                counter("tunnel_forward_open_failures_total", f.channelOpenFailures)
            }
        }
        return out
    }
}

/// The Prometheus side of `--metrics`: at each scrape, reads what `HostActivity` holds, brings the swift-metrics
/// counters and gauges (backed by a swift-prometheus registry) up to date, and returns the registry's text
/// exposition. Filling them at scrape time keeps the forwarding path free of metric updates.
public final class TunnelMetrics: Sendable {
    private let activity: HostActivity
    private let registry = PrometheusCollectorRegistry()

    /// The swift-metrics objects made so far and the totals their counters last reached, by series.
    private struct Series {
        var counters: [String: (counter: CoreMetrics.Counter, total: Int)] = [:]
        var gauges: [String: Meter] = [:]
    }
    // The swift-metrics objects are thread-safe but not marked Sendable; they are only touched under this lock.
    private let series: NIOLockedValueBox<Series>

    public init(activity: HostActivity) {
        self.activity = activity
        self.series = NIOLockedValueBox(Series())
    }

    /// The Prometheus text exposition (format 0.0.4) of every series, current as of this call.
    public func exposition() -> [UInt8] {
        let samples = MetricSample.samples(activity.snapshot)
        let factory = PrometheusMetricsFactory(registry: registry)
        return series.withLockedValue { series in
            var seen = Set<String>()
            for sample in samples {
                let dimensions = sample.labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                let key = sample.name + "|" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                seen.insert(key)
                switch sample.kind {
                case .counter:
                    var entry = series.counters[key]
                        ?? (CoreMetrics.Counter(label: sample.name, dimensions: dimensions, factory: factory), 0)
                    // Totals only grow; a smaller one would be a new tunnel under an old name: keep counting up.
                    if sample.value > entry.total { entry.counter.increment(by: sample.value - entry.total) }
                    entry.total = max(entry.total, sample.value)
                    series.counters[key] = entry
                case .gauge:
                    let meter = series.gauges[key] ?? Meter(label: sample.name, dimensions: dimensions, factory: factory)
                    meter.set(sample.value)
                    series.gauges[key] = meter
                }
            }
            // A host or forward that went (down, reload) takes its series with it, rather than leaving its last
            // values exported for ever.
            for (key, entry) in series.counters where !seen.contains(key) {
                entry.counter.destroy()
                series.counters[key] = nil
            }
            for (key, meter) in series.gauges where !seen.contains(key) {
                meter.destroy()
                series.gauges[key] = nil
            }
            return registry.emitToBuffer()
        }
    }
}
