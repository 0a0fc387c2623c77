import Foundation
import Testing
@testable import TunnelConfig

/// `resolvedSettings(host:)` against `ssh -F file -G host`, keyword by keyword,
/// for every Match criterion, combinations, socket forwards, numeric host
/// names, and two whole files of the kind people have. Each case writes its
/// files (and harmless exec scripts) in a temporary directory; `@DIR@` in a
/// line is that directory.
@Suite("Match and friends: same answers as ssh -G", .enabled(if: OpenSSH.path != nil, "ssh is not installed"))
struct MatchOracleTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var hosts: [String]
        var lines: [String]
        var files: [String: String] = [:]
        /// Lines (`keyword value`) that must be in the output for a host, so
        /// that agreeing with ssh -G cannot mean "both ignored the block".
        var expect: [String: [String]] = [:]
        var testDescription: String { name }
    }

    /// Scripts the exec cases call: each exits with a fixed status or tests its argument.
    static let scripts: [String: String] = [
        "yes.sh": "#!/bin/sh\nexit 0\n",
        "no.sh": "#!/bin/sh\nexit 1\n",
        // True when the first argument is the second (for %h, %n, %p, %r, %u tests).
        "is.sh": "#!/bin/sh\ntest \"$1\" = \"$2\"\n",
    ]

    static let cases: [Case] = [
        Case(name: "Match all, around settings and after Host", hosts: ["a", "b"], lines: [
            "Host a", "  Port 2201",
            "Match all", "  User everyone", "  LocalForward 7000 db:1",
            "Host b", "  Port 2202",
        ]),
        Case(name: "Match !all never applies", hosts: ["a"], lines: ["Match !all", "  Port 1", "Match all", "  Port 2"]),
        Case(name: "Match host tests the HostName so far", hosts: ["db", "web", "DB"], lines: [
            "Host db DB", "  HostName DB.Example.COM",
            "Match host *.example.com", "  Port 2222",
            "Match host web,!db*", "  User webuser",
            "Match !host *.example.com", "  IdentityFile ~/.ssh/elsewhere",
        ], expect: ["db": ["port 2222"], "web": ["user webuser", "identityfile ~/.ssh/elsewhere"]]),
        Case(name: "Match originalhost and user", hosts: ["db", "alias", "other"], lines: [
            "Host alias", "  HostName db", "  User deploy",
            "Match originalhost alias user deploy", "  Port 2001",
            "Match originalhost db", "  Port 2002",
            "Match user deploy", "  ServerAliveInterval 11",
            "Match !originalhost alias,db", "  ConnectTimeout 3",
        ], expect: ["alias": ["port 2001", "serveraliveinterval 11"], "db": ["port 2002"], "other": ["connecttimeout 3"]]),
        Case(name: "Match user sees only lines before it", hosts: ["x"], lines: [
            "Match user bob", "  Port 1",
            "User bob",
            "Match user bob", "  Port 2",
        ]),
        Case(name: "Match localuser", hosts: ["x"], lines: [
            "Match localuser @LOCALUSER@", "  Port 2001",
            "Match !localuser @LOCALUSER@", "  User wrong",
            "Match localuser nobody-like-this,@LOCALUSER@", "  ServerAliveCountMax 7",
        ]),
        Case(name: "Match final and canonical: a second pass with the host name", hosts: ["db", "web"], lines: [
            "Host db", "  HostName DB.Example.com",
            "Host *.example.com", "  Port 2000",
            "Match final host db.example.com", "  User finaluser",
            "Match canonical", "  IdentityFile ~/canon",
            "Match final", "  LocalForward 1 a:1",
            "Host db", "  LocalForward 2 b:2",
        ], expect: ["db": ["user finaluser", "port 2000", "identityfile ~/canon", "localforward 2 [b]:2", "localforward 1 [a]:1"]]),
        Case(name: "CanonicalizeHostname on: a second pass without any Match", hosts: ["db", "other"], lines: [
            "Host db", "  CanonicalizeHostname yes", "  HostName Db.Example.com",
            "Host db.example.com", "  Port 1113",
            "Match canonical", "  User canon",
        ], expect: ["db": ["port 1113", "user canon"]]),
        Case(name: "Match canonical alone: no second pass", hosts: ["x"], lines: ["Match canonical", "  Port 1111"]),
        Case(name: "Match !final", hosts: ["x"], lines: ["Match !final", "  LocalForward 3 c:3", "Match final", "  LocalForward 4 d:4"]),
        Case(name: "Match exec: status, negation, and tokens", hosts: ["db", "web"], lines: [
            "Host db", "  HostName db.example.com", "  User deploy", "  Port 2222",
            "Match exec @DIR@/yes.sh", "  ServerAliveInterval 5",
            "Match exec @DIR@/no.sh", "  ServerAliveCountMax 9",
            "Match !exec @DIR@/no.sh", "  ConnectionAttempts 3",
            "Match exec \"@DIR@/is.sh %h db.example.com\"", "  User viahost",
            "Match exec \"@DIR@/is.sh %n web\"", "  Port 2001",
            "Match exec \"@DIR@/is.sh %p 2222\"", "  GatewayPorts yes",
            "Match exec \"@DIR@/is.sh %r deploy\"", "  IdentitiesOnly yes",
            "Match exec \"@DIR@/is.sh %u @LOCALUSER@\"", "  HashKnownHosts yes",
            "Match exec \"@DIR@/is.sh %d @LOCALHOME@\"", "  ExitOnForwardFailure yes",
            "Match exec \"@DIR@/is.sh %k db.example.com\"", "  PasswordAuthentication no",
            "Match exec \"@DIR@/is.sh %C @CHASH@\"", "  KbdInteractiveAuthentication no",
        ], files: scripts, expect: ["db": ["serveraliveinterval 5", "connectionattempts 3", "gatewayports yes", "identitiesonly yes",
                     "hashknownhosts yes", "exitonforwardfailure yes", "passwordauthentication no",
                     "kbdinteractiveauthentication no"], "web": ["port 2001"]]),
        Case(name: "Match exec after a failed criterion", hosts: ["a", "b"], lines: [
            "Match host a exec @DIR@/yes.sh", "  Port 2001",
            "Match exec @DIR@/yes.sh host b", "  User bee",
        ], files: scripts),
        Case(name: "Include inside Match", hosts: ["a", "b"], lines: [
            "Match originalhost a", "  Include @DIR@/inner.conf",
            "Match all", "  Port 3",
        ], files: ["inner.conf": "Port 2\nHost other\n  User other\nHost *\n  User inner\n"], expect: ["a": ["port 2", "user inner"], "b": ["port 3"]]),
        Case(name: "Match host with HostName %h", hosts: ["db"], lines: [
            "Host db", "  HostName %h.internal",
            "Match host db.internal", "  Port 2345",
        ]),
        Case(name: "Unix-socket forwards", hosts: ["x"], lines: [
            "Host x",
            "  LocalForward /path/local.sock host:80",
            "  LocalForward 8080 /var/run/docker.sock",
            "  LocalForward 127.0.0.1:8081 /var/run/b.sock",
            "  LocalForward /a.sock /b.sock",
            "  LocalForward 8083 [/run/x]:1",
            "  DynamicForward 1080",
            "  RemoteForward /run/user/1000/gnupg/S.gpg-agent /home/u/.gnupg/S.gpg-agent.extra",
            "  RemoteForward /r.sock localhost:22",
            "  RemoteForward 9000 /l.sock",
            "  RemoteForward /rd.sock",
            "  StreamLocalBindMask 0077",
            "  StreamLocalBindUnlink yes",
        ], expect: ["x": ["localforward 8080 /var/run/docker.sock", "remoteforward /run/user/1000/gnupg/S.gpg-agent /home/u/.gnupg/S.gpg-agent.extra", "streamlocalbindmask 077", "streamlocalbindunlink yes"]]),
        Case(name: "Numeric host names", hosts: ["1", "10.1", "0x7f.1", "010.1", "1.2.3", "4294967296", "FE80::1", "0:0::1", "MiXeD"], lines: [
            "Host *", "  Port 22",
        ], expect: ["1": ["hostname 0.0.0.1"], "10.1": ["hostname 10.0.0.1"], "FE80::1": ["hostname FE80::1"], "MiXeD": ["hostname mixed"]]),
        Case(name: "laptop: Match all around an Include, socket forwards, defaults last", hosts: ["nas", "pi", "github.com", "gpg-box", "random.example.org"], lines: [
            "# ~/.ssh/config on a laptop",
            "IgnoreUnknown UseKeychain",
            "Match all",
            "  Include @DIR@/config.d/*.conf",
            "Host nas",
            "  HostName 192.168.1.10",
            "  User admin",
            "  LocalForward 5000 localhost:5000",
            "  LocalForward 8080 /var/run/docker.sock",
            "Host pi",
            "  HostName 10.1",
            "  User pi",
            "  DynamicForward 1080",
            "Host gpg-box",
            "  HostName gpg.example.org",
            "  RemoteForward /run/user/1000/gnupg/S.gpg-agent /home/me/.gnupg/S.gpg-agent.extra",
            "  StreamLocalBindUnlink yes",
            "Host github.com",
            "  User git",
            "  IdentityFile ~/.ssh/id_github",
            "  IdentitiesOnly yes",
            "Host *",
            "  UseKeychain yes",
            "  ServerAliveInterval 60",
            "  IdentityFile ~/.ssh/id_ed25519",
        ], files: [
            "config.d/10-work.conf": "Host *.example.org\n  User me\n  Port 2222\nHost gpg-box\n  ServerAliveCountMax 5\n",
            "config.d/20-home.conf": "Host nas pi\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile ~/.ssh/known_hosts.home\n",
        ], expect: ["nas": ["user admin", "stricthostkeychecking accept-new", "localforward 8080 /var/run/docker.sock"], "pi": ["hostname 10.0.0.1", "dynamicforward 1080"], "gpg-box": ["serveralivecountmax 5", "streamlocalbindunlink yes"], "random.example.org": ["user me", "port 2222"]]),
        Case(name: "work: Match exec for the VPN, jump hosts, final pass", hosts: ["bastion", "db1", "db2.corp", "web", "laptop-local"], lines: [
            "# a work config",
            "Host bastion",
            "  HostName bastion.corp.example.com",
            "  User ops",
            "Match originalhost db*,web !exec @DIR@/on-vpn.sh",
            "  ProxyJump ops@bastion.corp.example.com:2222",
            "Host db1",
            "  HostName 10.20.0.11",
            "  LocalForward 15432 localhost:5432",
            "Host db2.corp",
            "  HostName 10.20.0.12",
            "Host web",
            "  HostName web.corp.example.com",
            "  LocalForward 8443 localhost:443",
            "Match final host 10.20.0.*",
            "  User dba",
            "  IdentityFile ~/.ssh/id_dba",
            "Match final host *.corp.example.com !user ops",
            "  User deploy",
            "Match exec \"@DIR@/is.sh %n laptop-local\"",
            "  HostName 127.0.0.1",
            "Host *",
            "  ServerAliveInterval 30",
            "  StrictHostKeyChecking yes",
        ], files: scripts.merging(["on-vpn.sh": "#!/bin/sh\nexit 1\n"]) { a, _ in a }, expect: ["db1": ["user dba", "proxyjump ops@bastion.corp.example.com:2222", "identityfile ~/.ssh/id_dba"], "web": ["user deploy"], "bastion": ["user ops"], "laptop-local": ["hostname 127.0.0.1"]]),
    ]

    @Test(arguments: cases)
    func matchesOpenSSH(_ c: Case) throws {
        let dir = try TemporaryDirectory()
        let account = ConfigContext.current
        func fill(_ text: String) -> String {
            text.replacingOccurrences(of: "@DIR@", with: dir.path)
                .replacingOccurrences(of: "@LOCALUSER@", with: account.userName)
                .replacingOccurrences(of: "@LOCALHOME@", with: account.homeDirectory)
                // %C for host db as the exec case sets it up: SHA-1 of %l%h%p%r.
                .replacingOccurrences(of: "@CHASH@", with: SHA1.hexDigest(account.localHostName + "db.example.com2222deploy"))
        }
        for (name, text) in c.files {
            let path = dir.write(name, fill(text))
            if name.hasSuffix(".sh") { chmod(path, 0o755) }
        }
        let file = dir.write("oracle.conf", c.lines.map(fill).joined(separator: "\n") + "\n")
        // Include's relative paths and `~` follow HOME, as for ssh.
        let config = try TunnelConfigFile.load(path: file, context: account)
        for host in c.hosts {
            let ssh = try OpenSSH.dump(config: file, host: host)
            let ours = Dictionary(grouping: config.resolvedSettings(host: host), by: \.keyword).mapValues { $0.map(\.value) }
            for keyword in TunnelConfigFile.resolvedKeywords {
                #expect(ours[keyword] == ssh[keyword], "\(host): \(keyword)")
            }
            #expect(config.resolve(host: host).problems.isEmpty, "\(host)")
            let printed = Set(config.resolvedSettings(host: host).map(\.description))
            for line in c.expect[host] ?? [] {
                #expect(printed.contains(line), "\(host): expected \(line)")
            }
        }
    }

    /// `tagged` and `localnetwork` came with OpenSSH 9.4; compared only where ssh knows them.
    static let newerCriteria: [Case] = [
        Case(name: "Tag and Match tagged", hosts: ["work", "home"], lines: [
            "Host work", "  Tag office",
            "Match tagged office,lab", "  Port 2001",
            "Match !tagged office", "  Port 2002",
        ], expect: ["work": ["port 2001"], "home": ["port 2002"]]),
        Case(name: "Match localnetwork", hosts: ["x"], lines: [
            "Match localnetwork 127.0.0.0/8,::1/128", "  Port 2001",
            "Match localnetwork 198.51.100.0/24", "  User never",
        ], expect: ["x": ["port 2001"]]),
    ]

    @Test(.enabled(if: OpenSSH.knowsMatch("tagged"), "this ssh predates Match tagged (OpenSSH 9.4)"), arguments: newerCriteria)
    func newerCriteriaMatchOpenSSH(_ c: Case) throws {
        try matchesOpenSSH(c)
    }
}

extension OpenSSH {
    /// Whether this ssh accepts a Match criterion (`ssh -G` fails on one it does not know).
    static func knowsMatch(_ criterion: String) -> Bool {
        guard let path else { return false }
        let file = NSTemporaryDirectory() + "knows-match-\(UUID().uuidString).conf"
        defer { try? FileManager.default.removeItem(atPath: file) }
        guard (try? Data("Match \(criterion) x\n  Port 1\n".utf8).write(to: URL(fileURLWithPath: file))) != nil else { return false }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-F", file, "-G", "h"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
