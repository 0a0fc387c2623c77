import Foundation
import Testing
@testable import TunnelConfig

/// `Match`: each criterion, the order OpenSSH evaluates them in, the final
/// pass, exec's tokens, timeout and skip policy. (`MatchOracleTests`
/// compares the same forms with `ssh -G`.)
@Suite("Match")
struct MatchTests {
    /// testContext, running exec commands with /bin/sh and a short timeout.
    static func config(_ lines: [String], exec: MatchExecPolicy = .run(timeout: 5), context: ConfigContext = testContext) throws -> TunnelConfigFile {
        var context = context
        context.environment["SHELL"] = "/bin/sh"
        context.environment["PATH"] = "/usr/bin:/bin"
        return try TunnelConfigFile.parse(text: lines.joined(separator: "\n"), file: "t.conf", context: context, matchExec: exec)
    }

    @Test func hostOriginalHostUserAndLocalUser() throws {
        let config = try Self.config([
            "Host db",
            "  HostName DB.Example.com",
            "  User deploy",
            "Match host *.example.com",          // the HostName so far, case-insensitively
            "  Port 1001",
            "Match originalhost DB",             // the name asked for, case-insensitively
            "  IdentityFile ~/.ssh/orig",
            "Match user deploy,!root",
            "  ServerAliveInterval 7",
            "Match localuser alice",
            "  ConnectTimeout 9",
            "Match !localuser alice",
            "  ConnectTimeout 1",
        ])
        let db = config.resolve(host: "db")
        #expect(db.port == 1001)
        #expect(db.identityFiles == ["/home/alice/.ssh/orig"])
        #expect(db.serverAliveInterval == 7)
        #expect(db.connectTimeout == 9)
        let other = config.resolve(host: "other")
        #expect(other.port == 22)
        #expect(other.serverAliveInterval == 0)  // User is alice, not deploy
        #expect(other.identityFilesGiven == false)
    }

    @Test func criteriaOnOneLineMustAllHoldAndOrderMatters() throws {
        let config = try Self.config([
            "Match host a,b !user root",
            "  Port 2",
            "Match user bob",   // User is not set yet: the local user (alice)
            "  Port 3",
            "Match all",
            "  User bob",
            "Match user bob",   // now it is
            "  ConnectTimeout 4",
        ])
        #expect(config.resolve(host: "a").port == 2)
        #expect(config.resolve(host: "c").port == 22)
        #expect(config.resolve(host: "c").connectTimeout == 4)
    }

    /// A Match line is decided once, where it stands: a User set inside its
    /// block does not switch the rest of the block off.
    @Test func aMatchLineIsDecidedWhereItStands() throws {
        let dir = try TemporaryDirectory()
        let inner = dir.write("inner.conf", "Port 2\n")
        let config = try Self.config([
            "Match user alice",
            "  User bob",
            "  Include \(inner)",
            "  ConnectTimeout 3",
        ])
        let host = config.resolve(host: "x")
        #expect(host.user == "bob")
        #expect(host.port == 2)
        #expect(host.connectTimeout == 3)
        #expect(host == config.referenceResolve(host: "x"))
    }

    @Test func allNegationAndSyntaxErrors() throws {
        let config = try Self.config(["Match !all", "  Port 2", "Match all", "  Port 3"])
        #expect(config.resolve(host: "x").port == 3)
        #expect(errors("Match") == ["t.conf:1: Match: missing argument"])
        #expect(errors("Match all host x") == ["t.conf:1: Match: \"all\" cannot be combined with other criteria"])
        #expect(errors("Match host") == ["t.conf:1: Match: missing argument for \"host\""])
        #expect(errors("Match hots x").first?.contains("unknown criterion \"hots\"") == true)
        #expect(errors("Match exec \"echo %z\"").first?.contains("unknown token %z") == true)
        #expect(errors("Match localnetwork 10.0.0.1/8").first?.contains("past its /8 mask") == true)
        #expect(errors("Match localnetwork !10.0.0.0/8").count == 1)
        // A bad Match line does not make its block apply to anything.
        #expect(errors("Match hots x", "  Port 1", "Host y", "  Port 2").count == 1)
    }

    @Test func finalPassMatchesTheHostName() throws {
        let config = try Self.config([
            "Host db",
            "  HostName DB.Example.com",
            "Host *.example.com",
            "  Port 2000",
            "Match final host db.example.com",
            "  User finaluser",
            "Match canonical",
            "  IdentityFile ~/canon",
            "Match final",
            "  LocalForward 1 a:1",
            "Host db",
            "  LocalForward 2 b:2",
            "  HostName ignored.in.the.final.pass",
        ])
        let db = config.resolve(host: "db")
        #expect(db.hostName == "db.example.com")
        #expect(db.port == 2000)  // `Host *.example.com` matches the host name in the second pass
        #expect(db.user == "finaluser")
        #expect(db.identityFiles == ["/home/alice/canon"])
        #expect(db.localForwards.map(\.listenPort) == [2, 1])
        // Without `final` anywhere there is no second pass: `canonical` never holds.
        let once = try Self.config(["Match canonical", "  Port 1111"])
        #expect(once.resolve(host: "db").port == 22)
    }

    @Test func tagged() throws {
        let config = try Self.config([
            "Host work", "  Tag office",
            "Match tagged office,lab", "  Port 2",
            "Match !tagged office", "  Port 3",
        ])
        #expect(config.resolve(host: "work").port == 2)
        #expect(config.resolve(host: "work").tag == "office")
        #expect(config.resolve(host: "home").port == 3)
    }

    @Test func localNetwork() throws {
        let addresses = LocalNetwork.interfaceAddresses()
        #expect(addresses.contains([127, 0, 0, 1]), "loopback is up on any test machine")
        // A documentation network this machine is not on (test machines do use them).
        let elsewhere = ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"].first { text in
            let net = try? CIDR.parse(text)
            return !addresses.contains { net?.contains($0) == true }
        }!
        let config = try Self.config([
            "Match localnetwork 127.0.0.0/8,::1", "  Port 2",
            "Match localnetwork \(elsewhere)", "  User never",
        ])
        #expect(config.resolve(host: "x").port == 2)
        #expect(config.resolve(host: "x").user == "alice")
        let net = try CIDR.parse("10.1.0.0/16")
        #expect(LocalNetwork.matches([net], addresses: [[10, 1, 200, 3]]))
        #expect(!LocalNetwork.matches([net], addresses: [[10, 2, 0, 1]]))
        #expect(LocalNetwork.matches([try CIDR.parse("fe80::/10")], addresses: [[0xfe, 0x80] + Array(repeating: 0, count: 13) + [1]]))
    }

    @Test func includeInsideMatchWorksAsInsideHost() throws {
        let dir = try TemporaryDirectory()
        let inner = dir.write("inner.conf", "Port 2\nHost other\n  User other\nHost *\n  User inner\n")
        let config = try Self.config(["Match originalhost a", "  Include \(inner)", "Match all", "  Port 3"])
        #expect(config.resolve(host: "a").port == 2)
        #expect(config.resolve(host: "a").user == "inner")
        #expect(config.resolve(host: "b").port == 3)
        #expect(config.resolve(host: "b").user == "alice")  // never-match: no Host line inside can switch it on
    }

    @Test func execRunsThroughTheShellWithTokensAndOnlyWhenNeeded() throws {
        let dir = try TemporaryDirectory()
        let log = dir.path + "/log"
        let config = try Self.config([
            "Host db", "  HostName db.example.com", "  User deploy", "  Port 2222",
            "Match exec \"echo %h %n %p %r %u %d %% >> \(log); test %n = db\"", "  ConnectTimeout 5",
            "Match host nomatch exec \"echo skipped >> \(log)\"", "  Port 1",
            "Match !exec \"exit 3\"", "  ServerAliveInterval 8",
        ])
        let db = config.resolve(host: "db")
        #expect(db.connectTimeout == 5)
        #expect(db.serverAliveInterval == 8)
        #expect(db.problems.isEmpty)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains("db.example.com db 2222 deploy alice /home/alice %"))
        #expect(!lines.contains("skipped"))
        #expect(config.resolve(host: "web").connectTimeout == nil)
    }

    /// The command runs with `$SHELL -c`, as OpenSSH runs it: a bash-only test holds under bash, not under dash.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/bin/bash")
                   && (try? FileManager.default.destinationOfSymbolicLink(atPath: "/bin/sh")) == "dash",
                   "needs /bin/bash and /bin/sh being dash"))
    func execUsesTheUsersShell() throws {
        let lines = ["Match exec \"[[ a == a ]]\"", "  Port 2"]
        var bash = testContext
        bash.environment["SHELL"] = "/bin/bash"
        let underBash = try TunnelConfigFile.parse(text: lines.joined(separator: "\n"), file: "t.conf", context: bash)
        #expect(underBash.resolve(host: "x").port == 2)
        var none = testContext
        none.environment["SHELL"] = nil  // OpenSSH's fallback: /bin/sh
        let underSh = try TunnelConfigFile.parse(text: lines.joined(separator: "\n"), file: "t.conf", context: none)
        #expect(underSh.resolve(host: "x").port == 22)
        var broken = testContext
        broken.environment["SHELL"] = "/nonexistent/shell"
        let problems = try TunnelConfigFile.parse(text: lines.joined(separator: "\n"), file: "t.conf", context: broken)
            .resolve(host: "x").problems
        #expect(problems.map(\.description) == [
            "t.conf:1: Match exec \"[[ a == a ]]\": shell \"/nonexistent/shell\" (from SHELL) is not executable",
        ])
    }

    /// One load of a file runs each command (as expanded) once, however
    /// often its hosts are resolved: as one `ssh` run would.
    @Test func execRunsOncePerLoad() throws {
        let dir = try TemporaryDirectory()
        let log = dir.path + "/log"
        let lines = ["Host a b", "  LocalForward 1 x:1", "Match exec \"echo %n >> \(log)\"", "  Port 2"]
        let config = try Self.config(lines)
        _ = config.tunnelHosts
        _ = config.resolvedSettings(host: "a")
        #expect(config.resolve(host: "a").port == 2)
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "a\nb\n")
        _ = try Self.config(lines)
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "a\nb\na\nb\n")
    }

    @Test func canonicalizeHostnameAsksForTheSecondPass() throws {
        let config = try Self.config([
            "Host db", "  CanonicalizeHostname yes", "  HostName Db.Example.com",
            "Host db.example.com", "  Port 1113",
        ])
        #expect(config.resolve(host: "db").port == 1113)
        #expect(config.resolve(host: "db") == config.referenceResolve(host: "db"))
        #expect(config.resolve(host: "db.example.com").port == 1113)
        #expect(errors("CanonicalizeHostname perhaps").count == 1)
    }

    @Test func execThatHangsIsAProblemOfTheHostWithItsLine() throws {
        let started = Date()
        let config = try Self.config(["Host slow", "  LocalForward 1 a:1", "Match exec \"sleep 30\"", "  Port 2"],
                                     exec: .run(timeout: 0.5))
        #expect(Date().timeIntervalSince(started) < 10)
        let slow = config.resolve(host: "slow")
        #expect(slow.port == 22)
        #expect(slow.problems.map(\.description) == ["t.conf:3: Match exec \"sleep 30\": did not finish within 0.5 seconds; killed"])
        #expect(config.tunnelHostNames.isEmpty)
        #expect(config.warnings.contains { $0.location?.line == 3 && $0.message.contains("host slow") })
    }

    @Test func execIsNeverRunWhenSkipped() throws {
        let dir = try TemporaryDirectory()
        let marker = dir.path + "/ran"
        let config = try Self.config(["Host a", "  LocalForward 1 a:1", "Match exec \"touch \(marker)\"", "  Port 2",
                                      "Match !exec \"touch \(marker)\"", "  User notrun"], exec: .skip)
        #expect(config.resolve(host: "a").port == 22)
        #expect(config.resolve(host: "a").user == "alice")  // a negated exec does not make the line hold either
        #expect(config.resolvedSettings(host: "a").contains(ResolvedSetting(keyword: "port", value: "22")))
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(config.warnings.map(\.description) == [
            "t.conf:3: Match exec: not run by a plain check; its block counts as not matching here (--resolve HOST runs it)",
            "t.conf:5: Match exec: not run by a plain check; its block counts as not matching here (--resolve HOST runs it)",
        ])
    }

    @Test func aForwardFromAMatchBlockMakesANamedHostATunnel() throws {
        let config = try Self.config(["Host db web", "  User x", "Match originalhost db", "  LocalForward 5432 db:5432"])
        #expect(config.tunnelHostNames == ["db"])
    }

    /// The index answers for files with Match as the walk does (see also FastPathTests).
    @Test func filesWithMatchResolveLikeTheWalk() throws {
        let config = try Self.config(["Host a", "  Port 1", "Match host a", "  User m"])
        #expect(config.hasMatch)
        #expect(config.resolve(host: "a") == config.referenceResolve(host: "a"))
        #expect(config.resolve(host: "a").user == "m")
        #expect(try !Self.config(["Host a", "  Port 1"]).hasMatch)
    }

    @Test func matchTokensFollowStrdelim() {
        #expect(MatchSyntax.tokens(afterKeywordOf: "Match exec \"test -n $X\" host=a") == ["exec", "test -n $X", "host", "a"])
        #expect(MatchSyntax.tokens(afterKeywordOf: "  match=all # c") == ["all", "#", "c"])
    }
}
