import Testing
@testable import TunnelConfig

/// `resolve(host:)` fills in `jumpChain`: each hop resolved through the same file as OpenSSH 9.2 does (checked with `ssh -v`, which
/// shows the `ssh -J ... -W ... host` it runs for each hop).
@Suite("ProxyJump chains: each hop's own settings")
struct JumpChainTests {
    func chain(_ config: TunnelConfigFile, _ host: String) -> HostConfig {
        config.resolve(host: host)
    }

    @Test("hops are resolved by name; user@ and :port from the entry override the hop's User and Port")
    func hopSettingsAndOverrides() throws {
        let config = try parse(
            "Host db", "  HostName db.internal", "  ProxyJump carol@bastion:2201,mid",
            "Host bastion", "  HostName 10.0.0.1", "  User bob", "  Port 22", "  IdentityFile /keys/bastion",
            "Host mid", "  HostName mid.internal", "  Port 2202",
            "Host *", "  User dave", "  UserKnownHostsFile /keys/known")
        let db = chain(config, "db")
        #expect(db.jumpChainProblem == nil)
        #expect(db.jumpChain.map(\.name) == ["carol@bastion:2201", "mid"])
        let bastion = db.jumpChain[0], mid = db.jumpChain[1]
        #expect(bastion.hostName == "10.0.0.1" && bastion.user == "carol" && bastion.port == 2201)
        #expect(bastion.identityFiles == ["/keys/bastion"])
        // Settings from the wildcard block reach the hop.
        #expect(mid.hostName == "mid.internal" && mid.port == 2202 && mid.user == "dave")
        #expect(mid.userKnownHostsFiles == ["/keys/known"])
    }

    @Test("a hop with no Host block of its own takes its settings from Host *")
    func wildcardOnlyHop() throws {
        let config = try parse("Host db", "  ProxyJump 127.0.0.1:2222", "Host *", "  User eve", "  IdentityFile /keys/all")
        let hop = try #require(chain(config, "db").jumpChain.first)
        #expect(hop.hostName == "127.0.0.1" && hop.port == 2222 && hop.user == "eve")
        #expect(hop.identityFiles == ["/keys/all"])
    }

    @Test("the first hop's own ProxyJump applies; a later hop's is ignored (it is given the chain, as ssh -J)")
    func nestedJumps() throws {
        let config = try parse(
            "Host t", "  ProxyJump h1,h2",
            "Host h1", "  ProxyJump h0",
            "Host h2", "  ProxyJump hx")
        let t = chain(config, "t")
        #expect(t.jumpChainProblem == nil)
        #expect(t.jumpChain.map(\.name) == ["h0", "h1", "h2"])
        #expect(t.jumpChain.allSatisfy { $0.jumpChain.isEmpty && $0.proxyJump == nil })
    }

    @Test("ProxyJump none, and no ProxyJump: a direct connection")
    func direct() throws {
        let config = try parse("Host a", "  ProxyJump none", "Host b", "  Port 2")
        #expect(chain(config, "a").jumpChain.isEmpty)
        #expect(chain(config, "b").jumpChain.isEmpty)
    }

    @Test("a loop (Host * sends the jump host through itself) is a problem of the host, not a hang")
    func loop() throws {
        let config = try parse("Host *", "  ProxyJump bastion")
        let db = chain(config, "db")
        #expect(db.jumpChainProblem?.message.contains("ProxyJump loop") == true, "\(String(describing: db.jumpChainProblem))")
        #expect(db.jumpChain.isEmpty && db.problems.isEmpty)
        // The usual way out: the jump host connects directly.
        let fixed = try parse("Host bastion", "  ProxyJump none", "Host *", "  ProxyJump bastion")
        let ok = chain(fixed, "db")
        #expect(ok.jumpChainProblem == nil && ok.jumpChain.map(\.name) == ["bastion"])
    }

    @Test("a first jump host with a ProxyCommand: not brought up (never connected to directly); a later hop's is ignored, as in OpenSSH")
    func proxyCommandHop() throws {
        let config = try parse("Host bastion", "  ProxyCommand nc %h %p", "Host db", "  ProxyJump bastion",
                               "Host web", "  ProxyJump first,bastion")
        let db = chain(config, "db")
        #expect(db.jumpChainProblem?.message.contains("jump host bastion: ProxyCommand") == true, "\(String(describing: db.jumpChainProblem))")
        #expect(db.jumpChain.isEmpty)
        let web = chain(config, "web")
        #expect(web.jumpChainProblem == nil && web.jumpChain.map(\.name) == ["first", "bastion"])
        #expect(web.jumpChain.allSatisfy { $0.proxyCommand == nil })
    }
}
