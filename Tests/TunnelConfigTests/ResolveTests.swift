import Foundation
import Testing
@testable import TunnelConfig

@Suite("resolve(host:): OpenSSH semantics")
struct ResolveTests {
    @Test func defaults() throws {
        let host = try parse("Host db", "LocalForward 1 a:2").resolve(host: "db")
        #expect(host.name == "db")
        #expect(host.hostName == "db")
        #expect(host.port == 22)
        #expect(host.user == "alice")
        #expect(!host.identityFilesGiven)
        #expect(host.identityFiles == [
            "/home/alice/.ssh/id_rsa", "/home/alice/.ssh/id_ecdsa", "/home/alice/.ssh/id_ecdsa_sk",
            "/home/alice/.ssh/id_ed25519", "/home/alice/.ssh/id_ed25519_sk", "/home/alice/.ssh/id_xmss",
            "/home/alice/.ssh/id_dsa",
        ])
        #expect(host.userKnownHostsFiles == ["/home/alice/.ssh/known_hosts", "/home/alice/.ssh/known_hosts2"])
        #expect(host.strictHostKeyChecking == .ask)
        #expect(host.serverAliveInterval == 0)
        #expect(host.serverAliveCountMax == 3)
        #expect(host.connectTimeout == nil)
        #expect(!host.gatewayPorts && !host.exitOnForwardFailure && !host.identitiesOnly)
        #expect(host.location == SourceLocation(file: "t.conf", line: 1))
    }

    @Test func firstValueWins() throws {
        let config = try parse(
            "Host db",
            "  Port 2222",
            "  User deploy",
            "  HostName first.example.com",
            "  StrictHostKeyChecking yes",
            "  ServerAliveInterval 15",
            "Host *",
            "  Port 22",
            "  User nobody",
            "  HostName second.example.com",
            "  StrictHostKeyChecking no",
            "  ServerAliveInterval 60",
            "  ServerAliveCountMax 5"
        )
        let db = config.resolve(host: "db")
        #expect(db.port == 2222)
        #expect(db.user == "deploy")
        #expect(db.hostName == "first.example.com")
        #expect(db.strictHostKeyChecking == .yes)
        #expect(db.serverAliveInterval == 15)
        #expect(db.serverAliveCountMax == 5)
        let other = config.resolve(host: "web")
        #expect(other.port == 22 && other.user == "nobody" && other.hostName == "second.example.com")
    }

    @Test func linesBeforeTheFirstHostApplyToAll() throws {
        let config = try parse("User everyone", "Host a", "User a-user")
        #expect(config.resolve(host: "a").user == "everyone")
        #expect(config.resolve(host: "b").user == "everyone")
    }

    @Test func noneLeavesATimeUnsetSoALaterValueWins() throws {
        let host = try parse("ServerAliveInterval none", "ServerAliveInterval 1m30s", "ConnectTimeout 10").resolve(host: "x")
        #expect(host.serverAliveInterval == 90)
        #expect(host.connectTimeout == 10)
    }

    @Test func patternsAndNegation() throws {
        let config = try parse(
            "Host *.internal !secret.internal",
            "  User internal",
            "Host web? db",
            "  Port 2200",
            "Host !* never",
            "  Port 1"
        )
        #expect(config.resolve(host: "db.internal").user == "internal")
        #expect(config.resolve(host: "secret.internal").user == "alice")
        #expect(config.resolve(host: "web1").port == 2200)
        #expect(config.resolve(host: "web12").port == 22)
        #expect(config.resolve(host: "db").port == 2200)
        // A negated match vetoes the line even when another pattern matches.
        #expect(config.resolve(host: "never").port == 22)
        // Host patterns are case-sensitive, as in OpenSSH.
        #expect(config.resolve(host: "DB").port == 22)
    }

    @Test func wildcardMatcher() {
        #expect(Wildcard.matches("abc", pattern: "a*c"))
        #expect(Wildcard.matches("ac", pattern: "a*c"))
        #expect(Wildcard.matches("abcbc", pattern: "*bc"))
        #expect(!Wildcard.matches("abcb", pattern: "*bc"))
        #expect(Wildcard.matches("a.b", pattern: "?.?"))
        #expect(!Wildcard.matches("ab", pattern: "?"))
        #expect(Wildcard.matches("", pattern: "*"))
        #expect(!Wildcard.matches("", pattern: "?"))
        #expect(Wildcard.matches("x", pattern: "**x**"))
    }

    @Test func forwardsAndIdentityFilesAccumulate() throws {
        let config = try parse(
            "Host db",
            "  IdentityFile ~/.ssh/id_db",
            "  LocalForward 1 a:1",
            "Host d*",
            "  IdentityFile ~/.ssh/id_d",
            "  IdentityFile ~/.ssh/id_db",
            "  LocalForward 2 a:2",
            "Host *",
            "  LocalForward 3 a:3"
        )
        let db = config.resolve(host: "db")
        #expect(db.identityFilesGiven)
        // A repeated IdentityFile is dropped, as OpenSSH does.
        #expect(db.identityFiles == ["/home/alice/.ssh/id_db", "/home/alice/.ssh/id_d"])
        #expect(db.localForwards.map(\.listenPort) == [1, 2, 3])
        #expect(db.localForwards.map(\.location.line) == [3, 7, 9])
        #expect(config.resolve(host: "x").localForwards.map(\.listenPort) == [3])
    }

    @Test func quotingEqualsAndComments() throws {
        let config = try parse(
            "# a comment",
            "",
            "   # indented comment",
            "Host=q",
            "  IdentityFile \"~/my keys/id\"",
            "  User = \"deploy user\"",
            "  Port=2222 # trailing comment",
            "  HOSTNAME 'Quoted.Example.COM'",
            "\tUserKnownHostsFile ~/a\\ b ~/c\r",
            "  StrictHostKeyChecking\tAccept-New"
        )
        let host = config.resolve(host: "q")
        #expect(host.identityFiles == ["/home/alice/my keys/id"])
        #expect(host.user == "deploy user")
        #expect(host.port == 2222)
        #expect(host.hostName == "quoted.example.com")
        #expect(host.userKnownHostsFiles == ["/home/alice/a b", "/home/alice/c"])
        #expect(host.strictHostKeyChecking == .acceptNew)
    }

    @Test(arguments: [
        ("yes", StrictHostKeyChecking.yes), ("true", .yes), ("no", .no), ("false", .no), ("off", .no),
        ("ask", .ask), ("accept-new", .acceptNew), ("YES", .yes),
    ])
    func strictHostKeyCheckingValues(_ text: String, _ expected: StrictHostKeyChecking) throws {
        #expect(try parse("StrictHostKeyChecking \(text)").resolve(host: "x").strictHostKeyChecking == expected)
    }

    @Test func expansions() throws {
        let config = try parse(
            "Host db",
            "  HostName %h.example.com",
            "  User deploy",
            "  Port 2200",
            "  IdentityFile %d/keys/%h-%p-%r-%u-%n-%i-%L-%l-%%",
            "  IdentityFile ${KEYDIR}/id",
            "  IdentityFile ~/x_%C",
            "  UserKnownHostsFile ~/.ssh/kh_%h none_is_only_special_alone",
            "Host web",
            "  UserKnownHostsFile none",
            "  HostName 100%%.example.com"
        )
        let db = config.resolve(host: "db")
        #expect(db.hostName == "db.example.com")
        #expect(db.identityFiles[0] == "/home/alice/keys/db.example.com-2200-deploy-alice-db-1000-box-box.example.com-%")
        #expect(db.identityFiles[1] == "/keys/id")
        let hash = SHA1.hexDigest("box.example.com" + "db.example.com" + "2200" + "deploy")
        #expect(db.identityFiles[2] == "/home/alice/x_\(hash)")
        #expect(db.userKnownHostsFiles == ["/home/alice/.ssh/kh_db.example.com", "none_is_only_special_alone"])
        let web = config.resolve(host: "web")
        #expect(web.userKnownHostsFiles == [])
        #expect(web.hostName == "100%.example.com")
    }

    @Test func sha1() {
        #expect(SHA1.hexDigest("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hexDigest("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(SHA1.hexDigest(String(repeating: "a", count: 1000)) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    @Test func tunnelAndConcreteHostNames() throws {
        let config = try parse(
            "Host *",
            "  User x",
            "Host alpha beta *.wild !gamma",
            "  Port 1",
            "Host beta",
            "  LocalForward 8080 a:1",
            "Host delta",
            "  DynamicForward 1080",
            "Host alpha",
            "  HostName alpha.example.com"
        )
        #expect(config.concreteHostNames == ["alpha", "beta", "delta"])
        #expect(config.tunnelHostNames == ["beta", "delta"])
        #expect(config.resolve(host: "alpha").location == SourceLocation(file: "t.conf", line: 3))
        #expect(config.resolve(host: "nowhere").location == nil)
        #expect(config.tunnelHosts.map(\.name) == ["beta", "delta"])
    }

    @Test func numericHostNamesAreCanonicalisedAsOpenSSHDoes() throws {
        // inet_aton forms (what `ssh -G` prints for each was checked by hand
        // against OpenSSH 9.2; OpenSSHOracleTests compares them live).
        let forms: [(String, String)] = [
            ("1", "0.0.0.1"), ("10.1", "10.0.0.1"), ("0x7f.1", "127.0.0.1"), ("010.1", "8.0.0.1"),
            ("1.2.3", "1.2.0.3"), ("4294967295", "255.255.255.255"), ("017700000001", "127.0.0.1"),
            // Not addresses: lowercased like any name.
            ("4294967296", "4294967296"), ("08", "08"), ("0x1G", "0x1g"), ("1.2.3.4.", "1.2.3.4."),
            // IPv6 kept as written when only the case differs, else canonical.
            ("FE80::1", "FE80::1"), ("::FFFF:1.2.3.4", "::FFFF:1.2.3.4"), ("0:0::1", "::1"),
            ("Web.Example.COM", "web.example.com"),
        ]
        for (written, expected) in forms {
            let host = try parse("Host x", "  HostName \(written)").resolve(host: "x")
            #expect(host.hostName == expected, "HostName \(written)")
        }
        // The name asked for is canonicalised too when there is no HostName.
        #expect(try parse("Host x").resolve(host: "127.1").hostName == "127.0.0.1")
        // With AddressFamily inet6, an IPv4 form is not an address.
        #expect(try parse("AddressFamily inet6", "HostName 10.1").resolve(host: "x").hostName == "10.1")
    }

    @Test func defaultsOfTheNewerKeywords() throws {
        let host = try parse("Host db").resolve(host: "db")
        #expect(host.identityAgent == nil)
        #expect(host.globalKnownHostsFiles == ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"])
        #expect(!host.hashKnownHosts)
        #expect(host.proxyJump == nil)
        #expect(host.connectionAttempts == 1)
        #expect(host.passwordAuthentication && host.pubkeyAuthentication && host.kbdInteractiveAuthentication)
        #expect(host.preferredAuthentications == nil)
        #expect(host.bindAddress == nil)
        #expect(host.addressFamily == .any)
        // The memberwise defaults are OpenSSH's too.
        let plain = HostConfig(name: "db", user: "alice")
        #expect(plain.globalKnownHostsFiles == host.globalKnownHostsFiles)
        #expect(plain.connectionAttempts == 1 && plain.addressFamily == .any && plain.pubkeyAuthentication)
    }

    @Test func explicitValuesOfTheNewerKeywords() throws {
        let host = try parse(
            "Host db",
            "  HostName DB.Example.com",
            "  Port 2200",
            "  User deploy",
            "  IdentityAgent ~/agent/%h_%p_%r_${KEYDIR}",
            "  GlobalKnownHostsFile ~/kh %h_kh",
            "  HashKnownHosts yes",
            "  ProxyJump jump@bastion:2222,ssh://ops%40corp;x=1@inner.example.:2022/,[2001:db8::1],10.0.0.1",
            "  ConnectionAttempts +3",
            "  PasswordAuthentication no",
            "  PubkeyAuthentication host-bound",
            "  ChallengeResponseAuthentication no",
            "  PreferredAuthentications publickey,keyboard-interactive",
            "  BindAddress fe80::1%eth0",
            "  AddressFamily INET6"
        ).resolve(host: "db")
        #expect(host.identityAgent == .socket("/home/alice/agent/db.example.com_2200_deploy_/keys"))
        // Used as written: OpenSSH expands neither ~ nor tokens in GlobalKnownHostsFile.
        #expect(host.globalKnownHostsFiles == ["~/kh", "%h_kh"])
        #expect(host.hashKnownHosts)
        #expect(host.proxyJump == [
            JumpHost(user: "jump", host: "bastion", port: 2222),
            JumpHost(user: "ops@corp", host: "inner.example", port: 2022),
            JumpHost(host: "2001:db8::1"),
            JumpHost(host: "10.0.0.1"),
        ])
        #expect(host.proxyJump?.map(\.description) == ["jump@bastion:2222", "ops@corp@inner.example:2022", "[2001:db8::1]", "[10.0.0.1]"])
        #expect(host.connectionAttempts == 3)
        #expect(!host.passwordAuthentication)
        #expect(host.pubkeyAuthentication)
        #expect(!host.kbdInteractiveAuthentication)
        #expect(host.preferredAuthentications == [.publickey, .keyboardInteractive])
        #expect(host.bindAddress == "fe80::1%eth0")
        #expect(host.addressFamily == .inet6)
    }

    @Test func identityAgentForms() throws {
        let config = try parse(
            "Host none", "  IdentityAgent none",
            "Host env", "  IdentityAgent SSH_AUTH_SOCK",
            "Host legacy", "  IdentityAgent $MY_AGENT",
            "Host tilde", "  IdentityAgent ~",
            "Host quoted", "  IdentityAgent \"/run/my agent.sock\""
        )
        #expect(config.resolve(host: "none").identityAgent == .disabled)
        #expect(config.resolve(host: "env").identityAgent == .environment("SSH_AUTH_SOCK"))
        #expect(config.resolve(host: "legacy").identityAgent == .environment("MY_AGENT"))
        #expect(config.resolve(host: "tilde").identityAgent == .socket("/home/alice/"))
        #expect(config.resolve(host: "quoted").identityAgent == .socket("/run/my agent.sock"))
    }

    @Test func firstValueWinsForTheNewerKeywords() throws {
        let config = try parse(
            "Host db",
            "  ProxyJump none",
            "  GlobalKnownHostsFile none",
            "  ConnectionAttempts 2",
            "  PubkeyAuthentication no",
            "  DSAAuthentication yes",
            "  AddressFamily inet",
            "  IdentityAgent none",
            "Host *",
            "  ProxyJump bastion",
            "  GlobalKnownHostsFile /etc/kh",
            "  ConnectionAttempts 5",
            "  PubkeyAuthentication yes",
            "  AddressFamily inet6",
            "  IdentityAgent /tmp/agent",
            "  HashKnownHosts yes",
            "  HashKnownHosts no",
            "  BindAddress 127.0.0.1",
            "  BindAddress ::1",
            "  PreferredAuthentications password",
            "  PreferredAuthentications publickey"
        )
        let db = config.resolve(host: "db")
        #expect(db.proxyJump == nil)
        #expect(db.globalKnownHostsFiles == [])
        #expect(db.connectionAttempts == 2)
        #expect(!db.pubkeyAuthentication)
        #expect(db.addressFamily == .inet)
        #expect(db.identityAgent == .disabled)
        #expect(db.hashKnownHosts)
        #expect(db.bindAddress == "127.0.0.1")
        #expect(db.preferredAuthentications == [.password])
        let other = config.resolve(host: "other")
        #expect(other.proxyJump == [JumpHost(host: "bastion")])
        #expect(other.globalKnownHostsFiles == ["/etc/kh"])
        #expect(other.connectionAttempts == 5)
        #expect(other.identityAgent == .socket("/tmp/agent"))
    }

    @Test func proxyCommandFirstMeansNoProxyJump() throws {
        let config = try parse(
            "Host pc", "  ProxyCommand nc %h %p",
            "Host none", "  ProxyJump none", "  ProxyCommand nc %h %p",
            "Host *", "  ProxyJump bastion", "  ProxyCommand nc %h %p"
        )
        #expect(config.resolve(host: "pc").proxyJump == nil)
        #expect(config.resolve(host: "none").proxyJump == nil)
        #expect(config.resolve(host: "other").proxyJump == [JumpHost(host: "bastion")])
        // Acted on (the host is not brought up), so no "ignored" warning.
        #expect(config.warnings.isEmpty)
        #expect(config.resolve(host: "pc").proxyCommand == "nc %h %p")
        #expect(config.resolve(host: "none").proxyCommand == "nc %h %p")
        #expect(config.resolve(host: "other").proxyCommand == nil)
    }

    @Test func proxyCommandIsTheRestOfTheLine() throws {
        let config = try parse(
            "Host a", "  ProxyCommand   /bin/nc -X 5 %h %p # kept \"q\"  ",
            "Host b", "  ProxyCommand=  = sh -c 'x'",
            "Host c", "  ProxyCommand none",
            "Host *", "  ProxyCommand later"
        )
        #expect(config.resolve(host: "a").proxyCommand == "/bin/nc -X 5 %h %p # kept \"q\"")
        #expect(config.resolve(host: "b").proxyCommand == "sh -c 'x'")
        #expect(config.resolve(host: "c").proxyCommand == nil)
        #expect(config.resolve(host: "c").proxyCommandProblem == nil)
        let problem = config.resolve(host: "other").proxyCommandProblem
        #expect(problem?.message.contains("ProxyCommand \"later\" is not supported yet") == true, "\(String(describing: problem))")
    }

    @Test func proxyJumpDropsATrailingComment() throws {
        // OpenSSH cuts a ProxyJump value at '#', even inside a word.
        let host = try parse("Host j", "  ProxyJump a,b#comment").resolve(host: "j")
        #expect(host.proxyJump == [JumpHost(host: "a"), JumpHost(host: "b")])
    }

    @Test func allTypesAreSendable() {
        func check<T: Sendable>(_: T.Type) {}
        check(TunnelConfigFile.self); check(HostConfig.self); check(ForwardSpec.self); check(ConfigErrors.self)
        check(ConfigContext.self); check(BindAddress.self); check(StrictHostKeyChecking.self)
        check(IdentityAgent.self); check(JumpHost.self); check(AddressFamily.self); check(AuthenticationMethod.self)
    }

    @Test func currentContextIsFilledIn() {
        let context = ConfigContext.current
        #expect(!context.homeDirectory.isEmpty)
        #expect(!context.userName.isEmpty)
    }
}
