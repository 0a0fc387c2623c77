import Foundation
import Testing
@testable import TunnelConfig

@Suite("Errors and warnings")
struct ErrorTests {
    @Test func everyProblemIsReportedWithItsLine() {
        let found = errors(
            "Host db",              // 1
            "  Port 80x",           // 2
            "  User deploy",        // 3
            "  LocalForward 12",    // 4
            "",                     // 5
            "Host other",           // 6
            "  Port 0",             // 7
            "  Frobnicate yes",     // 8
            "  Port 22 23",         // 9
            "  StrictHostKeyChecking maybe", // 10
            "  User \"unterminated", // 11
            "  HostName",           // 12
            "  HostName a%x",       // 13: a problem of the hosts that use it
            "  UserKnownHostsFile a none", // 14
            "  ServerAliveInterval 5 minutes", // 15
            "  ServerAliveInterval 5x",        // 16
            "  ServerAliveCountMax -1",        // 17
            "  GatewayPorts maybe",            // 18
            "  IdentityFile ${UNSET_VAR}/id",  // 19
            "  IdentityFile %z",               // 20
            "  Port http"                      // 21
        )
        #expect(found == [
            "t.conf:2: Port: bad port \"80x\"",
            "t.conf:4: LocalForward: missing target: expected [bind_address:]port host:hostport",
            "t.conf:7: Port: bad port \"0\" (must be 1-65535)",
            "t.conf:8: unknown keyword \"Frobnicate\"",
            "t.conf:9: Port: takes one argument, found 2: \"22 23\"",
            "t.conf:10: StrictHostKeyChecking: bad value \"maybe\" (expected yes, no, ask, accept-new or off)",
            "t.conf:11: unbalanced quotes",
            "t.conf:12: HostName: missing argument",
            "t.conf:14: UserKnownHostsFile: \"none\" must appear alone",
            "t.conf:15: ServerAliveInterval: takes one argument, found 2: \"5 minutes\"",
            "t.conf:16: ServerAliveInterval: bad time value \"5x\" (seconds, or e.g. 30s, 5m, 1h30m; or none)",
            "t.conf:17: ServerAliveCountMax: bad number \"-1\" (expected a whole number, 0 or more)",
            "t.conf:18: GatewayPorts: bad value \"maybe\" (expected yes or no)",
        ])
    }

    /// Lines OpenSSH accepts but tunnel cannot act on (OpenSSH itself only
    /// fails on them when connecting to a host that uses them) stay with the
    /// hosts that use them: the rest of the file resolves, and the check warns.
    @Test func linesTunnelCannotActOnStayWithTheirHosts() throws {
        let config = try parse(
            "Host db",                         // 1
            "  IdentityFile ${UNSET_VAR}/id",  // 2
            "  IdentityFile %z",               // 3
            "  Port http",                     // 4
            "  LocalForward 8080 db:http",     // 5
            "  HostName a%x",                  // 6
            "  ConnectionAttempts 0",          // 7
            "  PreferredAuthentications publickey,pasword", // 8
            "  BindAddress 1.2.3.4:22",        // 9
            "  ProxyJump a:ssh",               // 10
            "  LocalForward 8081 :80",         // 11
            "Host web",                        // 12
            "  LocalForward 8081 web:80",      // 13
            "Host db web",                     // 14
            "  LocalForward 8082 x:80"         // 15
        )
        let db = config.resolve(host: "db")
        #expect(db.problems.map(\.description) == [
            "t.conf:2: IdentityFile: environment variable ${UNSET_VAR} is not set",
            "t.conf:3: IdentityFile: unknown token %z (allowed here: %% %C %L %d %h %i %k %l %n %p %r %u)",
            "t.conf:4: Port: bad port \"http\": service names are not supported, give the port number (1-65535)",
            "t.conf:5: LocalForward: bad target port \"http\": service names are not supported, give the port number (1-65535)",
            "t.conf:6: HostName: unknown token %x (allowed here: %% %h)",
            "t.conf:7: ConnectionAttempts: bad number \"0\" (expected a whole number, 1 or more)",
            "t.conf:8: PreferredAuthentications: unknown method \"pasword\" (known: gssapi-with-mic, gssapi-keyex, hostbased, publickey, keyboard-interactive, password, none)",
            "t.conf:9: BindAddress: bad address \"1.2.3.4:22\" (expected an IPv4 or IPv6 address, without brackets or port, or a host name)",
            "t.conf:10: ProxyJump: bad jump host \"a:ssh\": bad port \"ssh\": service names are not supported, give the port number (1-65535)",
            "t.conf:11: LocalForward: missing target host",
        ])
        let web = config.resolve(host: "web")
        #expect(web.problems.isEmpty)
        #expect(web.localForwards.map(\.listenPort) == [8081, 8082])
        // `tunnel up FILE` leaves db out; the warnings name it.
        #expect(config.tunnelHostNames == ["web"])
        #expect(config.warnings.map(\.description).contains(
            "t.conf:4: Port: bad port \"http\": service names are not supported, give the port number (1-65535) (host db uses it and cannot be brought up)"))
        #expect(config.warnings.count == 10)
        // A line every host uses names a few of them.
        let lines = ["Host *", "  Port http"] + (1...9).map { "Host h\($0)" }
        let many = try TunnelConfigFile.parse(text: lines.joined(separator: "\n"), file: "t.conf", context: testContext)
        #expect(many.warnings.map(\.description) == [
            "t.conf:2: Port: bad port \"http\": service names are not supported, give the port number (1-65535) (hosts h1, h2, h3, h4 and 5 more use it and cannot be brought up)",
        ])
    }

    @Test func descriptionIsOneProblemPerLine() {
        let problems = ConfigErrors([
            ConfigError(location: SourceLocation(file: "tunnels.conf", line: 12), message: "LocalForward: bad port \"80x\""),
            ConfigError(location: nil, message: "something general"),
        ])
        #expect(problems.description == "tunnels.conf:12: LocalForward: bad port \"80x\"\nsomething general")
    }

    @Test func emptyValuesAndMissingArguments() {
        #expect(errors("Port") == ["t.conf:1: Port: missing argument"])
        #expect(errors("Port \"\"") == ["t.conf:1: Port: missing argument"])
        #expect(errors("User # only a comment") == ["t.conf:1: User: missing argument"])
        #expect(errors("Host") == ["t.conf:1: Host: missing argument"])
        #expect(errors("Host \"\"") == ["t.conf:1: Host: missing argument"])
        #expect(errors("Host a \"\"") == ["t.conf:1: Host: empty pattern"])
        #expect(errors("Foo") == ["t.conf:1: unknown keyword \"Foo\""])
        #expect(errors("Port==22") == ["t.conf:1: Port: bad port \"=22\""])
    }

    @Test func knownButIgnoredKeywordsWarnOncePerKeyword() throws {
        let config = try parse(
            "Host a",
            "  ForwardAgent yes",
            "  ControlMaster auto",
            "Host b",
            "  forwardagent no",
            "  Cipher blowfish"
        )
        #expect(config.warnings.map(\.description) == [
            "t.conf:2: ForwardAgent is an OpenSSH option tunnel does not use; ignored",
            "t.conf:3: ControlMaster is an OpenSSH option tunnel does not use; ignored",
            "t.conf:6: Cipher is an OpenSSH option tunnel does not use; ignored",
        ])
    }

    @Test func keywordsParsedForLaterReleasesAreNotWarnedAbout() throws {
        let config = try parse(
            "Host a",
            "  IdentityAgent none",
            "  GlobalKnownHostsFile /etc/kh",
            "  HashKnownHosts yes",
            "  ProxyJump bastion",
            "  ConnectionAttempts 2",
            "  PasswordAuthentication no",
            "  PubkeyAuthentication yes",
            "  KbdInteractiveAuthentication no",
            "  ChallengeResponseAuthentication no",
            "  PreferredAuthentications publickey",
            "  BindAddress 127.0.0.1",
            "  AddressFamily inet"
        )
        #expect(config.warnings.isEmpty, "\(config.warnings)")
    }

    @Test func badValuesOfTheNewerKeywords() {
        let found = errors(
            "Host x",                                        // 1
            "  ProxyJump a, b",                              // 2
            "  ProxyJump ::1",                               // 3
            "  ProxyJump a:0",                               // 4
            "  ProxyJump @h",                                // 5
            "  ProxyJump a,,b",                              // 6
            "  ProxyJump ssh://h/path",                      // 7
            "  ProxyJump ssh://-h",                          // 8
            "  ProxyJump a:ssh",                             // 9
            "  ConnectionAttempts 0",                        // 10
            "  ConnectionAttempts many",                     // 11
            "  AddressFamily ipv4",                          // 12
            "  PubkeyAuthentication off",                    // 13
            "  HashKnownHosts ask",                          // 14
            "  PasswordAuthentication 1",                    // 15
            "  PreferredAuthentications publickey,pasword",  // 16
            "  PreferredAuthentications publickey,,password", // 17
            "  BindAddress [::1]",                           // 18
            "  BindAddress 1.2.3.4:22",                      // 19
            "  IdentityAgent %z",                            // 20: a problem of the host, not of the file
            "  IdentityAgent ${UNSET_VAR}/agent",            // 21: the same
            "  IdentityAgent $not-a-name",                   // 22
            "  GlobalKnownHostsFile /a none",                // 23
            "  GlobalKnownHostsFile " + (1...33).map { "/k\($0)" }.joined(separator: " "), // 24
            "  ChallengeResponseAuthentication maybe",       // 25
            "  ProxyJump"                                    // 26
        )
        let jumpForms = "(expected [user@]host[:port] or ssh://[user@]host[:port])"
        #expect(found == [
            "t.conf:2: ProxyJump: takes one argument, found 2: \"a, b\" (separate jump hosts with commas, no spaces)",
            "t.conf:3: ProxyJump: bad jump host \"::1\": missing host name \(jumpForms)",
            "t.conf:4: ProxyJump: bad jump host \"a:0\": bad port \"0\" (must be 1-65535)",
            "t.conf:5: ProxyJump: bad jump host \"@h\": empty user name \(jumpForms)",
            "t.conf:6: ProxyJump: empty jump host in \"a,,b\" (separate hosts with single commas, no spaces)",
            "t.conf:7: ProxyJump: bad jump host \"ssh://h/path\": a path is not allowed \(jumpForms)",
            "t.conf:8: ProxyJump: bad jump host \"ssh://-h\": invalid host name \"-h\" \(jumpForms)",
            "t.conf:11: ConnectionAttempts: bad number \"many\" (expected a whole number, 1 or more)",
            "t.conf:12: AddressFamily: bad value \"ipv4\" (expected any, inet or inet6)",
            "t.conf:13: PubkeyAuthentication: bad value \"off\" (expected yes, no, unbound or host-bound)",
            "t.conf:14: HashKnownHosts: bad value \"ask\" (expected yes or no)",
            "t.conf:15: PasswordAuthentication: bad value \"1\" (expected yes or no)",
            "t.conf:22: IdentityAgent: invalid environment variable name in \"$not-a-name\"",
            "t.conf:23: GlobalKnownHostsFile: \"none\" must appear alone",
            "t.conf:24: GlobalKnownHostsFile: too many files (at most 32)",
            "t.conf:25: KbdInteractiveAuthentication: bad value \"maybe\" (expected yes or no)",
            "t.conf:26: ProxyJump: missing argument",
        ])
    }

    @Test func ignoreUnknownCoversLaterLinesOnly() {
        #expect(errors("IgnoreUnknown Tunnel*,UseKeychainX", "TunnelReconnectLimit 5", "usekeychainx yes") == [])
        #expect(errors("TunnelReconnectLimit 5", "IgnoreUnknown Tunnel*") == ["t.conf:1: unknown keyword \"TunnelReconnectLimit\""])
        #expect(errors("IgnoreUnknown Tunnel*,!TunnelBad", "TunnelBad 1") == ["t.conf:1: unknown keyword \"TunnelBad\""].map { $0.replacingOccurrences(of: ":1:", with: ":2:") })
        // Covered words are ignored even without a value.
        #expect(errors("IgnoreUnknown Tunnel*", "TunnelFlag") == [])
    }

    @Test func garbageIsRejectedCleanly() {
        let binary = String(decoding: (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }, as: UTF8.self)
        #expect(throws: ConfigErrors.self) { try TunnelConfigFile.parse(text: binary, file: "bin", context: testContext) }

        // Printable garbage: many errors, but a bounded report.
        let noise = (0..<5000).map { "\($0)garbage%%{{ \u{FFFD}\u{1}" }.joined(separator: "\n")
        do {
            _ = try TunnelConfigFile.parse(text: noise, file: "noise", context: testContext)
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.count == DiagnosticSink.maximumErrors + 1)
            #expect(error.errors.last?.message == "\(5000 - DiagnosticSink.maximumErrors) more problems not shown")
            #expect(error.errors.first?.description.hasPrefix("noise:1: unknown keyword \"0garbage%%{{\"") == true)
        }

        let huge = String(repeating: "# padding\n", count: 1_100_000)
        #expect(throws: ConfigErrors.self) { try TunnelConfigFile.parse(text: huge, file: "huge", context: testContext) }
    }

    @Test func loadingFiles() throws {
        let dir = try TemporaryDirectory()
        let good = dir.write("good.conf", "Host db\n  LocalForward 8080 db:5432\n")
        let config = try TunnelConfigFile.load(path: good, context: testContext)
        #expect(config.path == good)
        #expect(config.tunnelHostNames == ["db"])

        let bad = dir.write("bad.conf", "Host db\n  Port 8x\n")
        #expect { try TunnelConfigFile.load(path: bad, context: testContext) } throws: { error in
            (error as? ConfigErrors)?.description == "\(bad):2: Port: bad port \"8x\""
        }

        let binary = dir.path + "/binary"
        _ = FileManager.default.createFile(atPath: binary, contents: Data([0x7F, 0x45, 0x4C, 0x46, 0, 1, 2]))
        #expect { try TunnelConfigFile.load(path: binary, context: testContext) } throws: { error in
            (error as? ConfigErrors)?.description.contains("not a text file") == true
        }

        let latin1 = dir.path + "/latin1"
        _ = FileManager.default.createFile(atPath: latin1, contents: Data([0x55, 0x73, 0x65, 0x72, 0x20, 0xE9]))
        #expect { try TunnelConfigFile.load(path: latin1, context: testContext) } throws: { error in
            (error as? ConfigErrors)?.description.contains("not valid UTF-8") == true
        }

        #expect { try TunnelConfigFile.load(path: dir.path + "/missing", context: testContext) } throws: { error in
            (error as? ConfigErrors)?.description.contains("no such file") == true
        }
        #expect { try TunnelConfigFile.load(path: dir.path, context: testContext) } throws: { error in
            (error as? ConfigErrors)?.description.contains("is a directory") == true
        }
        #expect { try TunnelConfigFile.load(path: "/dev/zero", context: testContext) } throws: { error in
            (error as? ConfigErrors)?.description.contains("larger than 10 MB") == true
        }
    }
}

/// A scratch directory removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "tunnelconfig-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let file = (path as NSString).appendingPathComponent(name)
        try? FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: file, contents: Data(text.utf8))
        return file
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
