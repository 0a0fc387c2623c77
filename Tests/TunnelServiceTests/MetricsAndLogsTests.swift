import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import TunnelEngine
@testable import TunnelService

@Suite("MetricsAddress")
struct MetricsAddressTests {
    @Test func loopbackAddresses() throws {
        #expect(try MetricsAddress(parsing: "127.0.0.1:9469") == MetricsAddress(parsing: "127.0.0.1:9469"))
        let v4 = try MetricsAddress(parsing: "127.0.0.2:9469")
        #expect(v4.host == "127.0.0.2" && v4.port == 9469 && v4.description == "127.0.0.2:9469")
        let v6 = try MetricsAddress(parsing: "[::1]:0")
        #expect(v6.host == "::1" && v6.port == 0 && v6.description == "[::1]:0")
    }

    @Test func refused() {
        for text in ["0.0.0.0:9469", "192.168.1.10:9469", "[::]:9469", "[2001:db8::1]:80"] {
            #expect(throws: MetricsAddress.Problem.notLoopback(text)) { try MetricsAddress(parsing: text) }
        }
        for text in ["localhost:9469", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "::1:9469", "[::1]9469", ":9469", "127.0.0.1:x"] {
            #expect(throws: MetricsAddress.Problem.malformed(text)) { try MetricsAddress(parsing: text) }
        }
        #expect(MetricsAddress.Problem.notLoopback("0.0.0.0:1").description.contains("loopback"))
    }
}

@Suite("JSON log lines")
struct JSONLogTests {
    @Test func oneObjectPerLineWithHostPeerAndTheRest() throws {
        let line = JSONLogHandler.line(level: .warning, message: "connection lost (\"reset\")\nsecond line",
                                       metadata: ["tunnel": "web", "peer": "10.0.0.5:22", "client": "127.0.0.1:5000",
                                                  "attempt": "3", "list": ["a", "b"]],
                                       time: "2026-11-29T14:03:07.125Z")
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false, "one line: \(line)")
        #expect(line.hasPrefix(#"{"time":"2026-11-29T14:03:07.125Z","level":"warning","host":"web","peer":"10.0.0.5:22","client":"127.0.0.1:5000","message":"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "connection lost (\"reset\")\nsecond line")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["attempt"] as? String == "3")
        #expect(metadata["list"] as? [String] == ["a", "b"])
        #expect(object["tunnel"] == nil, "the engine's `tunnel` key is called host")
    }

    @Test func controlCharactersAreEscaped() throws {
        let text = "a\u{0}b\u{1b}[31mc\td\\e\u{7f}é🙂"
        let quoted = JSONLogHandler.quoted(text)
        #expect(quoted == #""a\u0000b\u001b[31mc\td\\e\u007fé🙂""#)
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
        #expect(decoded == [text])
    }

    @Test func timeHasMilliseconds() {
        #expect(JSONLogHandler.now().range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil)
    }
}

@Suite("HostActivity and metrics")
struct MetricsTests {
    static func info() -> SessionInfo {
        SessionInfo(hostKeyType: "ssh-ed25519", hostKeyFingerprint: "SHA256:x", hostKeyStatus: "", identityFile: "")
    }

    @Test func statesFollowTheEvents() {
        var host = HostActivity.Host(name: "web", counters: TunnelCounters())
        #expect(host.state == .connecting)
        HostActivity.apply(.attemptFailed(.connectionLost(reason: "refused"), retryIn: 1, report: .news), to: &host)
        #expect(host.state == .failing && host.failedAttempts == 1)
        HostActivity.apply(.connected(Self.info(), reconnected: false), to: &host)
        #expect(host.state == .up && host.reconnects == 0)
        HostActivity.apply(.sessionLost(.connectionLost(reason: "reset"), retryIn: 1), to: &host)
        #expect(host.state == .reconnecting)
        HostActivity.apply(.attemptFailed(.connectionLost(reason: "refused"), retryIn: 2, report: .news), to: &host)
        #expect(host.state == .reconnecting, "still coming back after a loss")
        HostActivity.apply(.connected(Self.info(), reconnected: true), to: &host)
        #expect(host.state == .up && host.reconnects == 1 && host.failedAttempts == 2)
    }

    @Test func needsAuthenticationIsAStateOfItsOwn() {
        var host = HostActivity.Host(name: "web", counters: TunnelCounters())
        let failure = AuthenticationFailure(peer: "me@web:22", attempts: [
            AuthenticationAttempt(identityFile: "", problem: .nobodyToAsk, method: .password)])
        HostActivity.apply(.needsAuthentication(.authenticationFailed(failure)), to: &host)
        #expect(host.state == .needsAuthentication && host.state.rawValue == "needs_authentication")
        #expect(host.failedAttempts == 1)
    }

    @Test func aHostNotBroughtUpLeavesNoSeries() {
        let activity = HostActivity()
        activity.add(name: "web", counters: TunnelCounters())
        activity.add(name: "db", counters: TunnelCounters())
        activity.remove(name: "web")
        activity.record(.connected(Self.info(), reconnected: false), host: "web")  // ignored: not there
        #expect(activity.snapshot.map(\.name) == ["db"])
        let text = String(decoding: TunnelMetrics(activity: activity).exposition(), as: UTF8.self)
        #expect(!text.contains(#"host="web""#) && text.contains(#"host="db""#))
    }

    /// `name{labels} value` → value, from the exposition text.
    static func values(_ bytes: [UInt8]) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            out[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        return out
    }

    @Test func scrapesReadTheCountersAtScrapeTime() {
        let activity = HostActivity()
        let web = TunnelCounters()
        let db = TunnelCounters()
        activity.add(name: "web", counters: web, sessions: { (2, 3) })
        activity.add(name: "db", counters: db)
        activity.record(.connected(Self.info(), reconnected: false), host: "web")
        let metrics = TunnelMetrics(activity: activity)

        web.connectionAccepted()
        web.addSent(1000)
        web.addReceived(50)
        var values = Self.values(metrics.exposition())
        #expect(values[#"tunnel_bytes_sent_total{host="web"}"#] == 1000)
        #expect(values[#"tunnel_bytes_received_total{host="web"}"#] == 50)
        #expect(values[#"tunnel_connections_active{host="web"}"#] == 1)
        #expect(values[#"tunnel_up{host="web"}"#] == 1)
        #expect(values[#"tunnel_up{host="db"}"#] == 0)
        #expect(values[#"tunnel_sessions_up{host="web"}"#] == 2 && values[#"tunnel_sessions_wanted{host="web"}"#] == 3)
        #expect(values[#"tunnel_sessions_wanted{host="db"}"#] == 1)
        #expect(values[#"tunnel_state{host="db",state="connecting"}"#] == 1)
        #expect(values[#"tunnel_state{host="db",state="up"}"#] == 0)

        // A second scrape reports the new totals (counters advance by the difference, not twice).
        web.addSent(24)
        web.connectionEnded()
        activity.record(.sessionLost(.connectionLost(reason: "reset"), retryIn: 1), host: "web")
        activity.record(.connected(Self.info(), reconnected: true), host: "web")
        values = Self.values(metrics.exposition())
        #expect(values[#"tunnel_bytes_sent_total{host="web"}"#] == 1024)
        #expect(values[#"tunnel_connections_active{host="web"}"#] == 0)
        #expect(values[#"tunnel_reconnects_total{host="web"}"#] == 1)
        var text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains("# TYPE tunnel_bytes_sent_total counter"))
        #expect(text.contains("# TYPE tunnel_up gauge"))

        // A host that goes (down, reload) takes its series with it.
        activity.remove(name: "db")
        text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(!text.contains(#"host="db""#) && text.contains(#"host="web""#))
    }

    @Test func forwardsHaveTheirOwnSeriesByStableID() {
        let activity = HostActivity()
        let counters = TunnelCounters(forwardCount: 2)
        let forwards = NIOLockedValueBox(["L127.0.0.1:5432", "D127.0.0.1:1080"])
        activity.add(name: "web", counters: counters, forwards: {
            let counts = counters.snapshot.forwards
            return forwards.withLockedValue { $0 }.enumerated().map { index, id in
                TunnelStatus.Forward(kind: id.hasPrefix("L") ? .local : .dynamic, id: id, listen: String(id.dropFirst()),
                                     target: "x", counts: counts[index])
            }
        })
        let metrics = TunnelMetrics(activity: activity)
        counters.connectionAccepted(forward: 0)
        counters.addSent(700, forward: 0)
        counters.addReceived(30, forward: 0)
        counters.recordOpenFailure(forward: 1)
        var values = Self.values(metrics.exposition())
        #expect(values[#"tunnel_forward_bytes_sent_total{forward="L127.0.0.1:5432",host="web"}"#] == 700, "\(values)")
        #expect(values[#"tunnel_forward_bytes_received_total{forward="L127.0.0.1:5432",host="web"}"#] == 30)
        #expect(values[#"tunnel_forward_connections_active{forward="L127.0.0.1:5432",host="web"}"#] == 1)
        #expect(values[#"tunnel_forward_connections_total{forward="L127.0.0.1:5432",host="web"}"#] == 1)
        #expect(values[#"tunnel_forward_open_failures_total{forward="D127.0.0.1:1080",host="web"}"#] == 1)
        #expect(values[#"tunnel_forward_bytes_sent_total{forward="D127.0.0.1:1080",host="web"}"#] == 0)
        // The host's totals are still there, under their own names.
        #expect(values[#"tunnel_bytes_sent_total{host="web"}"#] == 700)

        // A forward that goes takes its series with it; the others keep counting.
        forwards.withLockedValue { $0.removeLast() }
        counters.addSent(24, forward: 0)
        values = Self.values(metrics.exposition())
        #expect(values[#"tunnel_forward_bytes_sent_total{forward="L127.0.0.1:5432",host="web"}"#] == 724)
        #expect(!values.keys.contains { $0.contains("D127.0.0.1:1080") }, "\(values.keys)")
    }
}
