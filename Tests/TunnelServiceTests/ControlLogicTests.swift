// Pure parts of the control socket: request decoding, the reload diff, the status table.
import Foundation
import Testing
import TunnelConfig
@testable import TunnelEngine
@testable import TunnelService

@Suite("control protocol, reload plan, status table")
struct ControlLogicTests {
    @Test("requests decode by version and command; bad lines get a one-line reason")
    func requestDecoding() {
        #expect(ControlRequest.decode(Array(#"{"v":1,"cmd":"status"}"#.utf8)) == .success(.status))
        #expect(ControlRequest.decode(Array(#"{"v":1,"cmd":"down","hosts":["a","b"]}"#.utf8)) == .success(.down(hosts: ["a", "b"])))
        #expect(ControlRequest.decode(Array(#"{"v":1,"cmd":"down"}"#.utf8)) == .success(.down(hosts: [])))
        #expect(ControlRequest.decode(Array(#"{"v":1,"cmd":"reload"}"#.utf8)) == .success(.reload))
        #expect(ControlRequest.decode(Array(#"{"v":2,"cmd":"status"}"#.utf8)) == .failure(.unsupportedVersion(2)))
        #expect(ControlRequest.decode(Array(#"{"v":1,"cmd":"nope"}"#.utf8)) == .failure(.unknownCommand("nope")))
        #expect(ControlRequest.decode(Array("status".utf8)) == .failure(.notJSON))
        #expect(ControlRequest.decode([UInt8](repeating: 32, count: ControlProtocol.maximumRequestBytes + 1)) == .failure(.tooLong))
        // What the client sends decodes to what it meant.
        let line = ControlRequest(.down(hosts: ["web"])).encodedLine()
        #expect(ControlRequest.decode(Array(line.dropLast())) == .success(.down(hosts: ["web"])))
    }

    @Test("a reply survives encoding, dates as ISO 8601")
    func replyRoundTrip() throws {
        var host = HostStatus(name: "web", state: "up", server: "h:22", reconnects: 2,
                              forwards: [ForwardStatus(kind: "local", listen: "127.0.0.1:8080", target: "db:5432", bytesIn: 5)])
        host.since = Date(timeIntervalSince1970: 1_700_000_000)
        let reply = ControlReply(ok: true, status: StatusReport(pid: 42, config: "/c", startedAt: Date(timeIntervalSince1970: 1_700_000_000), hosts: [host]))
        let line = reply.encodedLine()
        #expect(String(decoding: line, as: UTF8.self).contains(#""since":"2023-11-14T22:13:20Z""#))
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(try ControlReply.decode(line) == reply)
    }

    static func host(_ name: String, line: Int = 1, port: Int = 8080, user: String = "me") -> HostConfig {
        var host = HostConfig(name: name, user: user)
        host.location = SourceLocation(file: "/c", line: line)
        host.localForwards = [ForwardSpec(bind: .loopback, listenPort: port, targetHost: "db", targetPort: 5432,
                                          location: SourceLocation(file: "/c", line: line + 1))]
        return host
    }

    @Test("reload plan: unchanged (even when its lines moved), added, removed, changed")
    func reloadPlan() {
        let plan = ReloadPlan(running: [Self.host("a"), Self.host("b"), Self.host("c")],
                              wanted: [Self.host("a", line: 10), Self.host("c", user: "other"), Self.host("d")])
        #expect(plan.unchanged == ["a"])
        #expect(plan.changed == ["c"])
        #expect(plan.added == ["d"])
        #expect(plan.removed == ["b"])
        #expect(plan.lines == ["d: added", "b: removed", "c: restarted (settings changed)", "a: unchanged"])
        #expect(ReloadPlan(running: [Self.host("a")], wanted: [Self.host("a", user: "other")]).changed == ["a"])
        #expect(ReloadPlan(running: [Self.host("a")], wanted: [Self.host("a", line: 3)]).isEmpty)
    }

    @Test("reload plan: a Ciphers line that only moved leaves the host alone; a changed one restarts it")
    func reloadPlanCiphers() throws {
        func with(_ text: String, line: Int) throws -> HostConfig {
            var host = Self.host("a")
            host.algorithmLists[.cipher] = try #require(AlgorithmList(kind: .cipher, text: text,
                                                                      location: SourceLocation(file: "/c", line: line)))
            return host
        }
        #expect(ReloadPlan(running: [try with("aes256-ctr", line: 3)], wanted: [try with("aes256-ctr", line: 9)]).isEmpty)
        #expect(ReloadPlan(running: [try with("aes256-ctr", line: 3)], wanted: [try with("^aes256-ctr", line: 3)]).changed == ["a"])
    }

    @Test("reload plan: a ProxyJump host whose lines (and its hops' lines) moved is unchanged")
    func reloadPlanJumpHostMoved() {
        func through(_ line: Int) -> HostConfig {
            var host = Self.host("db", line: line)
            host.jumpChain = [Self.host("bastion", line: line + 20)]
            host.jumpChainProblem = nil
            return host
        }
        #expect(ReloadPlan(running: [through(3)], wanted: [through(7)]).isEmpty)
        var other = through(7)
        other.jumpChain[0].user = "someone-else"
        #expect(ReloadPlan(running: [through(3)], wanted: [other]).changed == ["db"])
    }

    static func local(_ port: Int, target: Int = 5432, line: Int) -> ForwardSpec {
        ForwardSpec(bind: .loopback, listenPort: port, targetHost: "db", targetPort: target, location: SourceLocation(file: "/c", line: line))
    }

    static func dynamic(_ port: Int, line: Int) -> DynamicForwardSpec {
        DynamicForwardSpec(bind: .loopback, listenPort: port, location: SourceLocation(file: "/c", line: line))
    }

    @Test("reload plan: a host whose only change is its listening forwards keeps running; only the difference moves")
    func reloadPlanForwardsOnly() throws {
        var before = Self.host("a")
        before.dynamicForwards = [Self.dynamic(1080, line: 3)]
        // Lines moved (a comment above), one local forward added, the proxy moved to another port, one local kept.
        var after = Self.host("a", line: 5)
        after.localForwards.append(Self.local(9000, line: 8))
        after.dynamicForwards = [Self.dynamic(1081, line: 9)]
        let plan = ReloadPlan(running: [before], wanted: [after])
        #expect(plan.changed.isEmpty && plan.unchanged.isEmpty && !plan.isEmpty)
        let change = try #require(plan.forwardsChanged.first)
        #expect(plan.forwardsChanged.count == 1 && change.host == "a")
        #expect(change.addedLocal == [Self.local(9000, line: 8)], "the new file's spec, with its line")
        #expect(change.removedLocal.isEmpty, "the kept forward moved lines only")
        #expect(change.addedDynamic == [Self.dynamic(1081, line: 9)])
        #expect(change.removedDynamic == [Self.dynamic(1080, line: 3)], "the running spec, as it was bound")
        #expect(plan.lines == ["a: forwards changed, session kept (-localhost:1080 -> socks, +localhost:9000 -> db:5432, +localhost:1081 -> socks)"])

        // A forward whose target changed is removed and added again (same port); a duplicate line counts twice.
        var retargeted = Self.host("a")
        retargeted.localForwards = [Self.local(8080, target: 6543, line: 2), Self.local(8080, target: 6543, line: 3)]
        let moved = try #require(ReloadPlan(running: [Self.host("a")], wanted: [retargeted]).forwardsChanged.first)
        #expect(moved.removedLocal == [Self.local(8080, line: 2)])
        #expect(moved.addedLocal == [Self.local(8080, target: 6543, line: 2), Self.local(8080, target: 6543, line: 3)])

        // Removing every forward is a forwards-only change too.
        var none = Self.host("a")
        none.localForwards = []
        #expect(ReloadPlan(running: [Self.host("a")], wanted: [none]).forwardsChanged.first?.removedLocal == [Self.local(8080, line: 2)])

        // RemoteForward lines too.
        var remote = Self.host("a")
        let spec = RemoteForwardSpec(bind: .loopback, listenPort: 9000, target: .host("127.0.0.1", port: 80),
                                     location: SourceLocation(file: "/c", line: 3))
        remote.remoteForwards = [spec]
        let remoteAdded = try #require(ReloadPlan(running: [Self.host("a")], wanted: [remote]).forwardsChanged.first)
        #expect(remoteAdded.addedRemote == [spec] && remoteAdded.addedLocal.isEmpty && remoteAdded.removedLocal.isEmpty)
        #expect(ReloadPlan(running: [remote], wanted: [Self.host("a")]).forwardsChanged.first?.removedRemote == [spec])

        // Anything else changing as well (here the user) restarts the host.
        var otherUser = after
        otherUser.user = "other"
        let restarted = ReloadPlan(running: [before], wanted: [otherUser])
        #expect(restarted.changed == ["a"] && restarted.forwardsChanged.isEmpty)
    }

    @Test("status table: states, sizes, durations, and no line over 100 columns")
    func table() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        var up = HostStatus(name: "web", state: "up", server: "example.com:22", reconnects: 1,
                            forwards: [ForwardStatus(kind: "local", listen: "127.0.0.1:8080",
                                                     target: "a-very-long-internal-host-name.example.internal:5432",
                                                     activeConnections: 2, totalConnections: 17, bytesIn: 5 * 1024 * 1024, bytesOut: 1500)])
        up.since = now.addingTimeInterval(-3725)
        up.activeConnections = 2; up.totalConnections = 17; up.bytesIn = 5 * 1024 * 1024; up.bytesOut = 1500
        up.hostKeyType = "ssh-ed25519"
        up.hostKeyFingerprint = "SHA256:" + String(repeating: "A", count: 43)
        up.cipherOut = "aes256-gcm@openssh.com"; up.cipherIn = "aes256-gcm@openssh.com"
        up.macOut = "hmac-sha2-256"; up.macIn = "hmac-sha2-512"
        var down = HostStatus(name: "db", state: "reconnecting", server: "db:22")
        down.reason = "connection refused"
        down.nextRetry = now.addingTimeInterval(4.2)
        let report = StatusReport(pid: 1, config: "/c", startedAt: now, hosts: [up, down])
        let text = StatusTable.render(report, now: now)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "web: up 1h02m, example.com:22, 1 reconnect, 2/17 conns, in 5.0 MiB, out 1.5 KiB")
        #expect(lines[1] == "  ssh-ed25519 SHA256:" + String(repeating: "A", count: 43))
        #expect(lines[2] == "  cipher aes256-gcm@openssh.com, MAC hmac-sha2-256/hmac-sha2-512")
        #expect(lines[4].hasPrefix("  127.0.0.1:8080 -> a-very-long-internal…  "), "\(lines[4])")
        #expect(lines[4].contains("5.0 MiB") && lines[4].contains("1.5 KiB"))
        #expect(lines.contains("db: reconnecting (connection refused), next try in 4s, db:22, 0 reconnects"))
        #expect(lines.allSatisfy { $0.count <= StatusTable.width })
        let rates: StatusTable.Rates = [StatusTable.rateKey(host: "web", forward: up.forwards[0]): (2048, 10)]
        let watched = StatusTable.render(report, now: now, rates: rates)
        #expect(watched.contains("IN/s") && watched.contains("2.0 KiB"))
        #expect(watched.split(separator: "\n").allSatisfy { $0.count <= StatusTable.width })
        #expect(StatusTable.duration(42) == "42s" && StatusTable.duration(185) == "3m05s" && StatusTable.duration(90000) == "1d01h")
    }

    @Test("TunnelSessions in status: \"up (2/3 sessions)\" in the table; the JSON has the counts only with more than one session")
    func sessionsInStatus() throws {
        let now = Date(timeIntervalSince1970: 1_000_000)
        var engine = TunnelStatus(name: "web", state: .up(.init(since: now.addingTimeInterval(-42), server: "h:22", hostKeyType: "ssh-ed25519",
                                                               hostKeyFingerprint: "SHA256:x", algorithms: .init())),
                                  reconnects: 0, lastError: nil, forwards: [], totals: TunnelCounters.Snapshot(),
                                  sessionsUp: 2, sessionsWanted: 3, sessionConnections: [4, 0, 5])
        let host = HostStatus(engine, server: "h:22", now: now)
        #expect(host.sessionsUp == 2 && host.sessionsWanted == 3 && host.sessionConnections == [4, 0, 5])
        #expect(StatusTable.hostLine(host, now: now).hasPrefix("web: up 42s (2/3 sessions), h:22"))
        engine.sessionsUp = 1
        engine.sessionsWanted = 1
        engine.sessionConnections = [0]
        let one = HostStatus(engine, server: "h:22", now: now)
        #expect(one.sessionsUp == nil && one.sessionsWanted == nil && one.sessionConnections == nil)
        #expect(!String(decoding: ControlReply(ok: true, status: StatusReport(pid: 1, config: "/c", startedAt: now, hosts: [one])).encodedLine(),
                        as: UTF8.self).contains("sessions"))
    }

    @Test("control socket default path: XDG_RUNTIME_DIR, else ~/.tunnel")
    func defaultPath() {
        #expect(ControlSocketPath.defaultPath(environment: ["XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/u"]) == "/run/user/1000/tunnel/control.sock")
        #expect(ControlSocketPath.defaultPath(environment: ["HOME": "/home/u"]) == "/home/u/.tunnel/control.sock")
    }

    @Test("systemd summary line")
    func systemdSummary() {
        let report = StatusReport(pid: 1, config: "/c", startedAt: Date(), hosts: [
            HostStatus(name: "a", state: "up", server: "a:22"), HostStatus(name: "b", state: "failed", server: "b:22")])
        #expect(SystemdReporter.summary(report) == "1 of 2 hosts up; b: failed")
    }
}
