import Testing
@testable import TunnelConfig

/// tunnel's own keywords (reconnect backoff) and the keepalive default, at the config layer.
@Suite("Own keywords: TunnelReconnectDelay, TunnelReconnectMaxDelay, TunnelSessions")
struct OwnKeywordTests {
    @Test("read in OpenSSH's time format, first value wins; defaults 1 s and 60 s")
    func parsedAndResolved() throws {
        let config = try parse(
            "IgnoreUnknown Tunnel*",
            "Host db",
            "  TunnelReconnectDelay 2",
            "  TunnelReconnectMaxDelay 5m",
            "Host *",
            "  TunnelReconnectDelay 9",
            "Host plain"
        )
        let db = config.resolve(host: "db")
        #expect(db.reconnectDelay == 2)
        #expect(db.reconnectMaxDelay == 300)
        let plain = config.resolve(host: "plain")
        #expect(plain.reconnectDelay == 9)
        #expect(plain.reconnectMaxDelay == 60)
        #expect(config.warnings.isEmpty, "covered by IgnoreUnknown: no warning")
    }

    @Test("a cap below the first delay is raised to it")
    func capAtLeastFirstDelay() throws {
        let host = try parse("IgnoreUnknown Tunnel*", "Host db", "  TunnelReconnectDelay 30", "  TunnelReconnectMaxDelay 5").resolve(host: "db")
        #expect(host.reconnectMaxDelay == 30)
    }

    @Test("bad values are errors with their line")
    func badValues() {
        #expect(errors("IgnoreUnknown Tunnel*", "Host db", "  TunnelReconnectDelay soon") == [
            "t.conf:3: TunnelReconnectDelay: bad time value \"soon\" (seconds, at least 1; or e.g. 30s, 5m)",
        ])
        #expect(errors("IgnoreUnknown Tunnel*", "Host db", "  TunnelReconnectMaxDelay 0") == [
            "t.conf:3: TunnelReconnectMaxDelay: bad time value \"0\" (seconds, at least 1; or e.g. 30s, 5m)",
        ])
    }

    @Test("without IgnoreUnknown the file still works for tunnel, with a warning saying what ssh -F needs")
    func warnsWithoutIgnoreUnknown() throws {
        let config = try parse("Host db", "  TunnelReconnectMaxDelay 10", "  TunnelReconnectDelay 2")
        #expect(config.resolve(host: "db").reconnectMaxDelay == 10)
        #expect(config.warnings.map(\.description) == [
            "t.conf:2: TunnelReconnectMaxDelay is tunnel's own keyword, which ssh rejects: put `IgnoreUnknown Tunnel*` before the first Host line so `ssh -F` accepts this file",
        ])
    }

    @Test("TunnelSessions: 1 to 16, default 1, first value wins")
    func sessions() throws {
        let config = try parse("IgnoreUnknown Tunnel*", "Host db", "  TunnelSessions 3", "Host *", "  TunnelSessions 16", "Host plain")
        #expect(config.resolve(host: "db").sessions == 3)
        #expect(config.resolve(host: "plain").sessions == 16)
        #expect(try parse("Host x").resolve(host: "x").sessions == 1)
        #expect(config.warnings.isEmpty, "covered by IgnoreUnknown: no warning")
        for bad in ["0", "17", "two", "-1"] {
            #expect(errors("IgnoreUnknown Tunnel*", "Host db", "  TunnelSessions \(bad)") == [
                "t.conf:3: TunnelSessions: bad value \"\(bad)\" (a number of SSH sessions from 1 to 16)",
            ])
        }
    }

    @Test("ServerAliveInterval: whether the file set it is kept (the engine's default applies only when it did not)")
    func serverAliveIntervalSet() throws {
        let config = try parse("Host a", "  ServerAliveInterval 0", "Host b", "  ServerAliveInterval 30", "Host c")
        #expect(config.resolve(host: "a").serverAliveIntervalSet && config.resolve(host: "a").serverAliveInterval == 0)
        #expect(config.resolve(host: "b").serverAliveInterval == 30)
        #expect(!config.resolve(host: "c").serverAliveIntervalSet)
    }
}
