// `tunnel check`, end to end: the built binary against OpenSSH's own reading of the same files
// (`ssh -F FILE -G HOST`), bad input of every kind, and the sample configs in Config/.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Helpers

enum CheckTool {
    /// The `tunnel` binary built next to this test bundle (`swift build --build-tests`).
    static let tunnelPath: String? = {
        var directories: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append((exe as NSString).deletingLastPathComponent)
        }
        if let exe = Bundle.main.executableURL { directories.append(exe.deletingLastPathComponent().path) }
        directories.append(Bundle.main.bundleURL.deletingLastPathComponent().path)
        return directories.map { ($0 as NSString).appendingPathComponent("tunnel") }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    static let sshPath: String? = ["/usr/bin/ssh", "/usr/local/bin/ssh", "/opt/homebrew/bin/ssh"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    static func tunnel() throws -> String {
        guard let tunnelPath else {
            throw TestSupportError("the `tunnel` binary is not next to the test bundle; build it first with "
                + "`swift build --build-tests` (looked beside /proc/self/exe and Bundle.main)")
        }
        return tunnelPath
    }

    /// The login name and home directory from the password database: what OpenSSH (and tunnel)
    /// use for `~`, `%d`, `%u` and the default User, whatever HOME says.
    static let account: (name: String, home: String) = {
        guard let pw = getpwuid(getuid()) else { return ("nobody", "/") }
        return (String(cString: pw.pointee.pw_name), String(cString: pw.pointee.pw_dir))
    }()

    /// The keywords `tunnel check --resolve` prints.
    static let keywords = [
        "hostname", "port", "user", "identityfile", "userknownhostsfile", "stricthostkeychecking",
        "localforward", "remoteforward", "dynamicforward", "serveraliveinterval", "serveralivecountmax",
        "connecttimeout", "gatewayports", "exitonforwardfailure", "identitiesonly",
        "identityagent", "globalknownhostsfile", "hashknownhosts", "proxyjump", "proxycommand", "connectionattempts",
        "passwordauthentication", "pubkeyauthentication", "kbdinteractiveauthentication",
        "preferredauthentications", "numberofpasswordprompts", "bindaddress", "addressfamily", "streamlocalbindmask", "streamlocalbindunlink",
        "permitremoteopen",
    ]

    /// Printed (by both tools) only when set.
    static let printedWhenSet: Set<String> = [
        "localforward", "remoteforward", "dynamicforward", "identityagent", "proxyjump", "proxycommand",
        "preferredauthentications", "bindaddress",
    ]

    /// Runs a command with HOME pointing at `home` and USER set to the login name, as both tools get.
    static func run(_ executable: String, _ arguments: [String], home: String, timeout: Double = 30) throws -> ProcessRunner.Output {
        try ProcessRunner(executable, arguments, extraEnvironment: [
            "HOME": home, "USER": account.name, "LC_ALL": "C", "TUNNEL_CHECK_PORT": "8443",
        ])
            .run(timeout: timeout)
    }

    /// `keyword value` lines → keyword → values in order, for the keywords tunnel acts on.
    static func settings(_ text: String) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, keywords.contains(String(parts[0])) else { continue }
            result[String(parts[0]), default: []].append(String(parts[1]))
        }
        return result
    }

    /// A fresh directory, removed by `remove()`.
    static func makeDirectory(under parent: String = NSTemporaryDirectory(), prefix: String = "tunnel-check") throws -> String {
        let path = (parent as NSString).appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ path: String, _ lines: [String]) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
    }

    /// The repository's Config/ directory.
    static var configDirectory: String {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Config").path
    }
}

// MARK: - Agreement with ssh -G

/// One snippet, the hosts to resolve in it, and any extra files it includes.
/// In lines and file names, `@DIR@` is the snippet's directory and `@HOME@` the HOME both tools get.
struct ResolveCase: Sendable, CustomTestStringConvertible {
    var name: String
    var hosts: [String]
    var lines: [String]
    var files: [String: [String]] = [:]
    var testDescription: String { name }
}

@Suite("tunnel check --resolve agrees with ssh -G", .enabled(if: CheckTool.sshPath != nil, "ssh (OpenSSH client) is not installed"))
struct CheckResolveTests {
    static let cases: [ResolveCase] = [
        ResolveCase(name: "first value wins across Host blocks", hosts: ["db", "dx", "other"], lines: [
            "Host db", "  Port 2222", "  User alice",
            "Host d*", "  Port 3333", "  User bob", "  HostName d.example.com",
            "Host *", "  Port 4444", "  ServerAliveCountMax 9",
        ]),
        ResolveCase(name: "Host * defaults after specific hosts", hosts: ["web", "other"], lines: [
            "Host web", "  User deploy", "  ServerAliveInterval 10",
            "Host *", "  User fallback", "  ServerAliveInterval 30", "  ServerAliveCountMax 5",
        ]),
        ResolveCase(name: "Host * first shadows later blocks", hosts: ["special", "plain"], lines: [
            "Host *", "  User everyone",
            "Host special", "  User special", "  Port 2022",
        ]),
        ResolveCase(name: "negation", hosts: ["a.internal", "secret.internal", "public.example.com"], lines: [
            "Host *.internal !secret.internal", "  Port 2200", "  User internal",
            "Host secret.internal", "  Port 2300",
        ]),
        ResolveCase(name: "negation alone matches nothing", hosts: ["foo", "bar"], lines: [
            "Host !foo", "  Port 1111",
            "Host *", "  Port 2222",
        ]),
        ResolveCase(name: "? wildcards", hosts: ["web1", "web12", "db-01", "db-1"], lines: [
            "Host web?", "  Port 2201",
            "Host db-??", "  Port 2202",
            "Host *", "  Port 2299",
        ]),
        ResolveCase(name: "several patterns on one Host line", hosts: ["alpha", "beta", "gamma2", "delta"], lines: [
            "Host alpha beta gamma*", "  User multi", "  LocalForward 9100 svc:80",
        ]),
        ResolveCase(name: "Keyword=value spellings", hosts: ["eq"], lines: [
            "Host=eq", "  Port=2022", "  User = joe", "  HostName =eq.example.com", "  LocalForward=8080 db:80",
            "  ServerAliveInterval= 15",
        ]),
        ResolveCase(name: "quoted values and comments", hosts: ["q"], lines: [
            "# a comment line", "",
            "Host \"q\"", "  User \"deploy\"", "  HostName \"q.example.com\" # trailing comment",
            "  IdentityFile \"~/my keys/id\"", "  UserKnownHostsFile \"~/kh one\" ~/kh2",
            "  LocalForward \"8080\" \"db:80\"",
        ]),
        ResolveCase(name: "case-insensitive keywords and tabs", hosts: ["ci"], lines: [
            "HOST ci", "\tHOSTNAME\tCI.Example.COM", "\tpOrT 2200", "\tlocalforward 7000 db:1",
            "\tstricthostkeychecking NO",
        ]),
        ResolveCase(name: "host names are matched case-insensitively?", hosts: ["q", "Q", "MiXeD"], lines: [
            "Host q", "  StrictHostKeyChecking yes",
            "Host Q", "  StrictHostKeyChecking no", "  Port 2020",
            "Host mixed", "  Port 3030",
        ]),
        ResolveCase(name: "lines before the first Host apply to all", hosts: ["a", "b"], lines: [
            "Port 2000", "User early",
            "Host a", "  Port 3000",
        ]),
        ResolveCase(name: "tokens in IdentityFile", hosts: ["tok"], lines: [
            "Host tok", "  HostName tok.example.com", "  Port 2022", "  User remote",
            "  IdentityFile ~/.ssh/id_%h_%p_%r_%u", "  IdentityFile /keys/%%/%n/%d", "  IdentityFile ~",
        ]),
        ResolveCase(name: "tokens in UserKnownHostsFile", hosts: ["tok", "Other"], lines: [
            "Host tok", "  HostName tok.example.com", "  Port 2022", "  User remote",
            "Host *", "  UserKnownHostsFile ~/.ssh/kh_%h_%p %d/kh_%r_%u /x/%%_%n",
        ]),
        ResolveCase(name: "more tokens in UserKnownHostsFile (%l %L %i %C %k)", hosts: ["t"], lines: [
            "Host t", "  HostName t.example.com", "  UserKnownHostsFile /kh/%l/%L/%i/%C/%k",
        ]),
        ResolveCase(name: "%h in HostName, lower-cased", hosts: ["web", "Mixed", "bare"], lines: [
            "Host web Mixed", "  HostName %h.Example.COM",
            "Host bare", "  HostName BARE.EXAMPLE.COM",
        ]),
        ResolveCase(name: "${HOME} in paths", hosts: ["env"], lines: [
            "Host env", "  IdentityFile ${HOME}/.ssh/id_env", "  UserKnownHostsFile ${HOME}/kh ${USER}_kh",
        ]),
        ResolveCase(name: "~ in paths", hosts: ["tilde"], lines: [
            "Host tilde", "  IdentityFile ~/.ssh/id_tilde", "  UserKnownHostsFile ~ ~/kh",
        ]),
        ResolveCase(name: "IdentityFile accumulates, duplicates dropped", hosts: ["k", "other"], lines: [
            "Host k", "  IdentityFile ~/.ssh/a", "  IdentityFile ~/.ssh/b",
            "Host *", "  IdentityFile ~/.ssh/a", "  IdentityFile ~/.ssh/c",
        ]),
        ResolveCase(name: "Include with a glob (absolute)", hosts: ["a", "b", "c"], lines: [
            "Include @DIR@/conf.d/*.conf",
            "Host c", "  Port 2003",
        ], files: [
            "@DIR@/conf.d/10-a.conf": ["Host a", "  Port 2001", "  LocalForward 7001 a:1"],
            "@DIR@/conf.d/20-b.conf": ["Host b", "  Port 2002", "Host *", "  User included"],
            "@DIR@/conf.d/ignored.txt": ["Host c", "  Port 9999"],
        ]),
        ResolveCase(name: "Include relative to ~/.ssh, with a glob", hosts: ["r", "s"], lines: [
            "Host r s", "  Include included/*.conf", "  User outer",
            "Host *", "  Port 2999",
        ], files: [
            "@HOME@/.ssh/included/one.conf": ["Port 2100", "Host s", "  HostName s.example.com"],
            "@HOME@/.ssh/included/two.conf": ["LocalForward 7100 r:1"],
        ]),
        ResolveCase(name: "Include with ~", hosts: ["t"], lines: [
            "Include ~/.ssh/tilde.conf",
            "Host t", "  Port 2998",
        ], files: [
            "@HOME@/.ssh/tilde.conf": ["Host t", "  Port 2100", "  User fromTilde"],
        ]),
        ResolveCase(name: "Include of nothing is fine", hosts: ["n"], lines: [
            "Include @DIR@/nothing/*.conf @DIR@/missing.conf",
            "Host n", "  Port 2400",
        ]),
        ResolveCase(name: "Include inside a block that does not match", hosts: ["yes", "no"], lines: [
            "Host yes", "  Port 2500",
            "Host no", "  Include @DIR@/inner.conf",
        ], files: [
            "@DIR@/inner.conf": ["User innerUser", "Host yes", "  User notForYes"],
        ]),
        ResolveCase(name: "every LocalForward form", hosts: ["lf"], lines: [
            "Host lf",
            "  LocalForward 8080 db:80",
            "  LocalForward 127.0.0.1:8081 db:81",
            "  LocalForward [::1]:8082 db:82",
            "  LocalForward *:8083 db:83",
            "  LocalForward :8084 db:84",
            "  LocalForward localhost:8085 db:85",
            "  LocalForward 8086 [2001:db8::1]:443",
            "  LocalForward [::1]:8087 [fe80::1]:22",
            "  LocalForward 0.0.0.0:8088 db.example.com:88",
            "  LocalForward 8089 10.1.2.3:89",
            "  LocalForward [127.0.0.1]:8090 [db]:90",
        ]),
        ResolveCase(name: "GatewayPorts yes decides the default bind", hosts: ["g"], lines: [
            "Host g", "  GatewayPorts yes", "  LocalForward 8080 db:80", "  LocalForward localhost:8081 db:81",
            "  DynamicForward 1080",
        ]),
        ResolveCase(name: "GatewayPorts no, first value wins", hosts: ["g", "h"], lines: [
            "Host g", "  GatewayPorts no",
            "Host *", "  GatewayPorts yes", "  LocalForward 8080 db:80",
        ]),
        ResolveCase(name: "RemoteForward forms", hosts: ["rf"], lines: [
            "Host rf",
            "  RemoteForward 9000 localhost:3000",
            "  RemoteForward *:9001 localhost:3001",
            "  RemoteForward :9002 h:1",
            "  RemoteForward localhost:9003 h:1",
            "  RemoteForward 127.0.0.1:9004 [::1]:3004",
            "  RemoteForward 9005",
            "  RemoteForward [::1]:9006",
            "  RemoteForward 0 h:1",
        ]),
        ResolveCase(name: "DynamicForward forms", hosts: ["df"], lines: [
            "Host df",
            "  DynamicForward 1080",
            "  DynamicForward *:1081",
            "  DynamicForward 127.0.0.1:1082",
            "  DynamicForward [::1]:1083",
            "  DynamicForward :1084",
            "  DynamicForward localhost:1085",
        ]),
        ResolveCase(name: "forwards accumulate, duplicates dropped", hosts: ["acc", "abc", "x"], lines: [
            "Host acc", "  LocalForward 1001 a:1", "  RemoteForward 2001 a:1", "  DynamicForward 3001",
            "Host a*", "  LocalForward 1002 a:2", "  LocalForward 1001 a:1", "  LocalForward localhost:1001 a:1",
            "Host *", "  LocalForward 1003 a:3", "  RemoteForward 2001 a:1", "  RemoteForward localhost:2001 a:1",
            "  DynamicForward 3001", "  DynamicForward 3002",
        ]),
        ResolveCase(name: "ServerAliveInterval time formats", hosts: ["t1", "t2", "t3", "t4", "t5", "t6", "t7"], lines: [
            "Host t1", "  ServerAliveInterval 1m",
            "Host t2", "  ServerAliveInterval 1h30m",
            "Host t3", "  ServerAliveInterval 90s",
            "Host t4", "  ServerAliveInterval 2M",
            "Host t5", "  ServerAliveInterval 1w",
            "Host t6", "  ServerAliveInterval none",
            "Host *", "  ServerAliveInterval 45", "  ServerAliveCountMax 0",
        ]),
        ResolveCase(name: "ConnectTimeout", hosts: ["c1", "c2", "c3", "c4", "c5"], lines: [
            "Host c1", "  ConnectTimeout 10",
            "Host c2", "  ConnectTimeout 1m",
            "Host c3", "  ConnectTimeout none",
            "Host c4", "  ConnectTimeout 0",
        ]),
        ResolveCase(name: "StrictHostKeyChecking spellings",
                    hosts: ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"], lines: [
            "Host s1", "  StrictHostKeyChecking yes",
            "Host s2", "  StrictHostKeyChecking no",
            "Host s3", "  StrictHostKeyChecking ask",
            "Host s4", "  StrictHostKeyChecking accept-new",
            "Host s5", "  StrictHostKeyChecking true",
            "Host s6", "  StrictHostKeyChecking false",
            "Host s7", "  StrictHostKeyChecking off",
            "Host s8", "  StrictHostKeyChecking YES",
        ]),
        ResolveCase(name: "flags: ExitOnForwardFailure, IdentitiesOnly", hosts: ["f1", "f2"], lines: [
            "Host f1", "  ExitOnForwardFailure yes", "  IdentitiesOnly true",
            "Host f2", "  ExitOnForwardFailure no", "  IdentitiesOnly False",
        ]),
        ResolveCase(name: "UserKnownHostsFile none", hosts: ["n", "m"], lines: [
            "Host n", "  UserKnownHostsFile none",
            "Host *", "  UserKnownHostsFile ~/.ssh/kh_all",
        ]),
        ResolveCase(name: "IgnoreUnknown and ignored OpenSSH keywords", hosts: ["x", "y"], lines: [
            "IgnoreUnknown TunnelReconnectMax,Foo*",
            "Host x", "  TunnelReconnectMax 5", "  FooThing 1", "  Port 2002", "  ForwardAgent yes",
            "  Compression yes", "  LocalForward 7000 x:1",
        ]),
        ResolveCase(name: "a host not in the file resolves through Host *", hosts: ["not-there.example.com"], lines: [
            "Host db", "  Port 2222",
            "Host *.example.com", "  User wildcard", "  ConnectTimeout 5",
        ]),
        ResolveCase(name: "several negations, repeated Host names, trailing comments", hosts: ["a", "b", "c"], lines: [
            "Host * !a !b", "  Port 2001 # not for a or b",
            "Host a", "  Port 2002", "  HostName literal%%x.example.com",
            "Host a b", "  Port 2003", "  User twice",
        ]),
        ResolveCase(name: "${VAR} in forwards, = with spaces", hosts: ["v"], lines: [
            "Host v", "  LocalForward ${TUNNEL_CHECK_PORT} db:${TUNNEL_CHECK_PORT}",
            "  RemoteForward ${TUNNEL_CHECK_PORT} localhost:80", "  DynamicForward localhost:${TUNNEL_CHECK_PORT}",
            "  GatewayPorts = yes", "  StrictHostKeyChecking Accept-New",
        ]),
        ResolveCase(name: "empty file: every default", hosts: ["anything"], lines: []),
        ResolveCase(name: "CRLF line endings and trailing blanks", hosts: ["crlf"], lines: [
            "Host crlf\r", "  Port 2323   \r", "  LocalForward 7777 db:1\t\r",
        ]),
        ResolveCase(name: "IdentityAgent forms", hosts: ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "other"], lines: [
            "Host a1", "  IdentityAgent /run/agent.sock",
            "Host a2", "  IdentityAgent none",
            "Host a3", "  IdentityAgent SSH_AUTH_SOCK",
            "Host a4", "  IdentityAgent $SSH_AUTH_SOCK",
            "Host a5", "  IdentityAgent ~/.ssh/agent",
            "Host a6", "  IdentityAgent ~",
            "Host a7", "  IdentityAgent \"/tmp/my agent\"",
            "Host a8", "  IdentityAgent NONE",
        ]),
        ResolveCase(name: "tokens and ${VAR} in IdentityAgent", hosts: ["tok", "Other.Host"], lines: [
            "Host tok", "  HostName tok.example.com", "  Port 2022", "  User remote",
            "Host *", "  IdentityAgent %d/agent_%h_%p_%r_%u_%n_%%_${TUNNEL_CHECK_PORT}_%k_%i_%l_%L_%C",
        ]),
        ResolveCase(name: "GlobalKnownHostsFile lists, none, as written", hosts: ["g1", "g2", "g3", "g4", "g5"], lines: [
            "Host g1", "  GlobalKnownHostsFile /etc/kh1",
            "Host g2", "  GlobalKnownHostsFile /etc/kh1 /etc/kh2 \"/etc/k h3\"",
            "Host g3", "  GlobalKnownHostsFile none",
            "Host g4", "  GlobalKnownHostsFile NONE",
            "Host g5", "  GlobalKnownHostsFile ~/kh %h_kh ${HOME}/kh",
        ]),
        ResolveCase(name: "yes/no spellings of the authentication and HashKnownHosts flags",
                    hosts: ["f1", "f2", "f3", "f4", "f5"], lines: [
            "Host f1", "  HashKnownHosts yes", "  PasswordAuthentication no", "  KbdInteractiveAuthentication no",
            "  PubkeyAuthentication no",
            "Host f2", "  HashKnownHosts TRUE", "  PasswordAuthentication false", "  KbdInteractiveAuthentication True",
            "  PubkeyAuthentication yes",
            "Host f3", "  HashKnownHosts False", "  PasswordAuthentication YES", "  PubkeyAuthentication unbound",
            "Host f4", "  PubkeyAuthentication host-bound", "  PubkeyAuthentication no",
            "Host f5", "  PubkeyAuthentication FALSE",
        ]),
        ResolveCase(name: "old names: ChallengeResponse, Skey, TIS and DSA authentication", hosts: ["o1", "o2", "o3", "o4"], lines: [
            "Host o1", "  ChallengeResponseAuthentication no", "  KbdInteractiveAuthentication yes",
            "Host o2", "  SkeyAuthentication no",
            "Host o3", "  TISAuthentication no", "  DSAAuthentication no",
            "Host o4", "  KbdInteractiveAuthentication yes", "  ChallengeResponseAuthentication no",
            "  DSAAuthentication unbound",
        ]),
        ResolveCase(name: "ProxyJump forms", hosts: ["j1", "j2", "j3", "j4", "j5", "j6", "j7", "j8", "j9", "j10"], lines: [
            "Host j1", "  ProxyJump bastion",
            "Host j2", "  ProxyJump admin@bastion.example.com:2222",
            "Host j3", "  ProxyJump a,b:2200,u@c",
            "Host j4", "  ProxyJump u@[2001:db8::1]:2022",
            "Host j5", "  ProxyJump 10.0.0.1,10.0.0.2:22",
            "Host j6", "  ProxyJump ssh://ops@bastion:2022/",
            "Host j7", "  ProxyJump ssh://first,ssh://op%41;fp=x@second.example.:2222",
            "Host j8", "  ProxyJump Mixed.Case.Example,u@v@h:22",
            "Host j9", "  ProxyJump none",
            "Host j10", "  ProxyJump a,b#comment # and a real comment",
            "Host *", "  ProxyJump fallback",
        ]),
        ResolveCase(name: "ProxyJump first value wins, also against ProxyCommand", hosts: ["p1", "p2", "p3", "p4"], lines: [
            "Host p1", "  ProxyJump none",
            "Host p2", "  ProxyCommand nc %h %p",
            "Host p3", "  ProxyJump first", "  ProxyCommand nc %h %p",
            "Host p4", "  ProxyJump none", "  ProxyCommand nc %h %p",
            "Host *", "  ProxyJump second",
        ]),
        // The command is the rest of the line as written: quotes, '#' and inner blanks kept, trailing blanks dropped.
        ResolveCase(name: "ProxyCommand as written, first wins, none", hosts: ["c1", "c2", "c3", "c4", "c5", "c6", "other"], lines: [
            "Host c1", "  ProxyCommand nc %h %p  # not a comment  \"a b\"   ",
            "Host c2", "  ProxyCommand=exec   nc %h %p %r %n %%",
            "Host c3", "  ProxyCommand none",
            "Host c4", "  ProxyCommand none", "  ProxyJump j",
            "Host c5", "  ProxyJump none",
            "Host c6", "  ProxyCommand None",
            "Host *", "  ProxyCommand last", "  ProxyJump second",
        ]),
        ResolveCase(name: "ConnectionAttempts", hosts: ["c1", "c2", "c3", "other"], lines: [
            "Host c1", "  ConnectionAttempts 3",
            "Host c2", "  ConnectionAttempts +2",
            "Host c3", "  ConnectionAttempts 007",
            "Host *", "  ConnectionAttempts 5", "  ConnectionAttempts 9",
        ]),
        ResolveCase(name: "PreferredAuthentications", hosts: ["m1", "m2", "m3", "m4"], lines: [
            "Host m1", "  PreferredAuthentications publickey",
            "Host m2", "  PreferredAuthentications gssapi-with-mic,hostbased,publickey,keyboard-interactive,password",
            "Host m3", "  PreferredAuthentications none,password,publickey,password",
            "Host m4", "  PreferredAuthentications keyboard-interactive,gssapi-keyex",
            "Host *", "  PreferredAuthentications password",
        ]),
        // Not printed by --resolve (tunnel lays them over libssh2's lists, not OpenSSH's), but both must accept the
        // lines and agree on everything else around them.
        ResolveCase(name: "Ciphers, MACs, KexAlgorithms, HostKeyAlgorithms", hosts: ["a1", "a2", "a3", "a4"], lines: [
            "Host a1", "  Ciphers aes256-ctr,aes128-ctr", "  MACs hmac-sha2-512", "  Port 2201",
            "Host a2", "  Ciphers +aes192-ctr", "  KexAlgorithms -diffie-hellman-group1-sha1", "  HostKeyAlgorithms ^ssh-ed25519",
            "Host a3", "  Ciphers -*cbc", "  MACs ^hmac-sha2-256", "  User a3user",
            "Host *", "  Ciphers aes128-ctr", "  KexAlgorithms curve25519-sha256",
        ]),
        ResolveCase(name: "NumberOfPasswordPrompts", hosts: ["n1", "n2", "n3"], lines: [
            "Host n1", "  NumberOfPasswordPrompts 1",
            "Host n2", "  NumberOfPasswordPrompts 0",
            "Host n3", "  NumberOfPasswordPrompts +2",
            "Host *", "  NumberOfPasswordPrompts 5", "  NumberOfPasswordPrompts 7",
        ]),
        ResolveCase(name: "BindAddress and AddressFamily", hosts: ["b1", "b2", "b3", "b4", "b5"], lines: [
            "Host b1", "  BindAddress 192.0.2.10", "  AddressFamily inet",
            "Host b2", "  BindAddress ::1", "  AddressFamily inet6",
            "Host b3", "  BindAddress fe80::1%lo", "  AddressFamily ANY",
            "Host b4", "  BindAddress localhost", "  AddressFamily Inet",
            "Host *", "  BindAddress 127.0.0.1", "  AddressFamily inet6",
        ]),
        ResolveCase(name: "every newer keyword, before the first Host and through Include", hosts: ["inc", "plain"], lines: [
            "ConnectionAttempts 2",
            "Include @DIR@/more.conf",
            "Host inc", "  HashKnownHosts no", "  AddressFamily inet",
        ], files: [
            "@DIR@/more.conf": [
                "Host inc", "  HashKnownHosts yes", "  ProxyJump j@jump:2022", "  IdentityAgent ~/agent.sock",
                "  GlobalKnownHostsFile /etc/kh", "  PasswordAuthentication no", "  BindAddress 127.0.0.2",
                "Host *", "  PreferredAuthentications publickey", "  KbdInteractiveAuthentication no",
            ],
        ]),
        ResolveCase(name: "bastion to database (design sample)", hosts: ["db-bastion"], lines: [
            "Host db-bastion",
            "    HostName bastion.example.com",
            "    User deploy",
            "    IdentityFile ~/.ssh/id_ed25519",
            "    ServerAliveInterval 15",
            "    ServerAliveCountMax 3",
            "    LocalForward 127.0.0.1:15432 db.internal:5432",
            "    LocalForward 8080 intranet.example.com:80",
            "    DynamicForward 1080",
            "    RemoteForward 9000 localhost:3000",
        ]),
    ]

    @Test(arguments: cases)
    func agreesWithOpenSSH(_ c: ResolveCase) throws {
        let tunnel = try CheckTool.tunnel()
        let ssh = try #require(CheckTool.sshPath)
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let home = (dir as NSString).appendingPathComponent("home")
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)

        // OpenSSH reads a relative Include under $HOME/.ssh (HOME, not the password database).
        func substitute(_ text: String) -> String {
            text.replacingOccurrences(of: "@DIR@", with: dir).replacingOccurrences(of: "@HOME@", with: home)
        }
        for (name, lines) in c.files {
            try CheckTool.write(substitute(name), lines.map(substitute))
        }
        let file = (dir as NSString).appendingPathComponent("snippet.conf")
        try CheckTool.write(file, c.lines.map(substitute))
        let snippet = c.lines.map(substitute).joined(separator: "\n")

        for host in c.hosts {
            let ours = try CheckTool.run(tunnel, ["check", file, "--resolve", host], home: home)
            guard ours.succeeded else {
                Issue.record("[\(c.name)] host \(host): `tunnel check --resolve` failed with \(ours.exit): \(ours.stderrText)\n\(snippet)")
                continue
            }
            let theirs = try CheckTool.run(ssh, ["-F", file, "-G", host], home: home)
            guard theirs.succeeded else {
                Issue.record("[\(c.name)] host \(host): `ssh -G` failed with \(theirs.exit): \(theirs.stderrText)\n\(snippet)")
                continue
            }
            let a = CheckTool.settings(ours.stdoutText)
            let b = CheckTool.settings(theirs.stdoutText)
            for keyword in CheckTool.keywords {
                let mine = a[keyword] ?? []
                let openssh = b[keyword] ?? []
                if mine != openssh {
                    Issue.record("""
                        [\(c.name)] host \(host), keyword \(keyword):
                          tunnel:  \(mine.isEmpty ? "(none)" : mine.joined(separator: " | "))
                          ssh -G:  \(openssh.isEmpty ? "(none)" : openssh.joined(separator: " | "))
                        snippet:
                        \(snippet)
                        """)
                }
            }
            // Every keyword is printed exactly once, except the ones that repeat.
            for keyword in CheckTool.keywords where !["identityfile", "localforward", "remoteforward", "dynamicforward"].contains(keyword) {
                if CheckTool.printedWhenSet.contains(keyword) {
                    #expect((a[keyword]?.count ?? 0) <= 1, "[\(c.name)] \(host): \(keyword) printed \(a[keyword]?.count ?? 0) times")
                } else {
                    #expect(a[keyword]?.count == 1, "[\(c.name)] \(host): \(keyword) printed \(a[keyword]?.count ?? 0) times")
                }
            }
            #expect(ours.stdoutText.split(separator: "\n").allSatisfy { line in
                CheckTool.keywords.contains(String(line.prefix { $0 != " " }))
            }, "[\(c.name)] \(host): unexpected line in\n\(ours.stdoutText)")
        }
    }
}

// MARK: - Summaries and warnings

@Suite("tunnel check output")
struct CheckOutputTests {
    @Test func summaryListsHostsAndForwardsAndWarningsGoToStderr() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("t.conf")
        try CheckTool.write(file, [
            "Host db-bastion",                                  // 1
            "    HostName bastion.example.com",                 // 2
            "    User deploy",                                  // 3
            "    ForwardAgent no",                              // 4
            "    LocalForward 127.0.0.1:15432 db.internal:5432", // 5
            "    LocalForward 8080 [2001:db8::5]:80",           // 6
            "    RemoteForward 9000 localhost:3000",            // 7
            "    DynamicForward *:1080",                        // 8
            "Host quiet",                                       // 9
            "    Port 2222",                                    // 10
            "Host *",                                           // 11
            "    Compression yes",                              // 12
            "    ForwardAgent yes",                             // 13
        ])
        let out = try CheckTool.run(tunnel, ["check", file], home: dir)
        #expect(out.exit == .exited(0), "\(out.stderrText)")
        #expect(out.stdoutText == """
            db-bastion: deploy@bastion.example.com:22
              LocalForward 127.0.0.1:15432 -> db.internal:5432
              LocalForward localhost:8080 -> [2001:db8::5]:80
              RemoteForward localhost:9000 on the server -> localhost:3000
              DynamicForward *:1080 SOCKS 4/5 and HTTP proxy
            \(file): OK, 1 host, 4 forwards

            """)
        // Once per keyword, at its first line.
        let warnings = out.stderrText.split(separator: "\n").map(String.init)
        #expect(warnings.count == 2, "\(out.stderrText)")
        #expect(warnings.contains { $0.hasPrefix("\(file):4: warning: ") && $0.contains("ForwardAgent") })
        #expect(warnings.contains { $0.hasPrefix("\(file):12: warning: ") && $0.contains("Compression") })
    }

    @Test func theSummarySaysHowManySessionsAHostKeepsUp() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("t.conf")
        try CheckTool.write(file, ["IgnoreUnknown Tunnel*", "Host build", "    User me", "    LocalForward 8080 artifacts:80", "    TunnelSessions 3"])
        let out = try CheckTool.run(tunnel, ["check", file], home: dir)
        #expect(out.exit == .exited(0), "\(out.stderrText)")
        #expect(out.stdoutText.hasPrefix("build: me@build:22 (3 SSH sessions)\n"), "\(out.stdoutText)")
        #expect(out.stderrText.isEmpty)
    }

    @Test func aFileWithoutForwardsIsValidButSaysSo() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("plain.conf")
        try CheckTool.write(file, ["Host a", "  Port 2222"])
        let out = try CheckTool.run(tunnel, ["check", file], home: dir)
        #expect(out.exit == .exited(0))
        #expect(out.stdoutText.contains("no Host has a forward"))
        #expect(out.stderrText.isEmpty)
    }

    @Test func resolvePrintsEveryKeywordForAnUnknownHostToo() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("r.conf")
        try CheckTool.write(file, ["Host *.example.com", "  User web", "  ConnectTimeout 1m", "  LocalForward 80 w:80"])
        let out = try CheckTool.run(tunnel, ["check", file, "--resolve", "www.example.com"], home: dir)
        #expect(out.exit == .exited(0), "\(out.stderrText)")
        let lines = out.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.contains("hostname www.example.com"))
        #expect(lines.contains("user web"))
        #expect(lines.contains("connecttimeout 60"))
        #expect(lines.contains("localforward 80 [w]:80"))
        #expect(lines.contains("stricthostkeychecking ask"))
        #expect(lines.contains("globalknownhostsfile /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"))
        #expect(lines.contains("pubkeyauthentication true"))
        #expect(lines.contains("connectionattempts 1"))
        #expect(lines.contains("addressfamily any"))
        // Like ssh -G, a forward keyword appears only when there is such a forward, and
        // identityagent, proxyjump, preferredauthentications and bindaddress only when set.
        #expect(Set(lines.map { String($0.prefix { $0 != " " }) })
                == Set(CheckTool.keywords).subtracting(CheckTool.printedWhenSet).union(["localforward"]))
    }
}

// MARK: - Bad input

struct BadLine: Sendable, CustomTestStringConvertible {
    var line: String
    /// Text the message must contain (case-insensitive).
    var mentions: String
    var testDescription: String { line.debugDescription }
}

@Suite("tunnel check rejects bad input")
struct CheckBadInputTests {
    static let badLines: [BadLine] = [
        BadLine(line: "Port abc", mentions: "port"),
        BadLine(line: "Port 0", mentions: "port"),
        BadLine(line: "Port 70000", mentions: "port"),
        BadLine(line: "Port 22 23", mentions: "one argument"),
        BadLine(line: "Port", mentions: "missing argument"),
        BadLine(line: "HostName", mentions: "missing argument"),
        BadLine(line: "User \"unterminated", mentions: "quote"),
        BadLine(line: "\"Port\" 22", mentions: "quote"),
        BadLine(line: "FrobnicateWidgets yes", mentions: "unknown keyword"),
        BadLine(line: "Host", mentions: "missing argument"),
        BadLine(line: "UserKnownHostsFile none ~/x", mentions: "none"),
        BadLine(line: "StrictHostKeyChecking maybe", mentions: "maybe"),
        BadLine(line: "ServerAliveInterval 5x", mentions: "time"),
        BadLine(line: "ServerAliveCountMax -1", mentions: "number"),
        BadLine(line: "ConnectTimeout soon", mentions: "time"),
        BadLine(line: "GatewayPorts perhaps", mentions: "perhaps"),
        BadLine(line: "ExitOnForwardFailure 1", mentions: "yes or no"),
        BadLine(line: "LocalForward 8080", mentions: "target"),
        BadLine(line: "LocalForward abc db:80", mentions: "port"),
        BadLine(line: "LocalForward 8080 db:99999", mentions: "port"),
        BadLine(line: "LocalForward 0 db:80", mentions: "port"),
        BadLine(line: "LocalForward [::1:8080 db:80", mentions: "]"),
        BadLine(line: "LocalForward 8080 db:80 extra", mentions: "too many"),
        BadLine(line: "LocalForward a:b:c:d:e f:g", mentions: "forwarding"),
        BadLine(line: "RemoteForward 9000 db:80 extra", mentions: "too many"),
        BadLine(line: "RemoteForward x:y:z", mentions: "forwarding specification"),
        BadLine(line: "Match hots x", mentions: "Match"),
        BadLine(line: "Match all host x", mentions: "combined"),
        BadLine(line: "Match exec \"true %z\"", mentions: "%z"),
        BadLine(line: "StreamLocalBindMask 999", mentions: "mask"),
        BadLine(line: "DynamicForward 0", mentions: "port"),
        BadLine(line: "DynamicForward 1080 1081", mentions: "too many"),
        BadLine(line: "DynamicForward a:b:c", mentions: "forwarding specification"),
        BadLine(line: "Include", mentions: "missing argument"),
        BadLine(line: "IdentityAgent $bad-name", mentions: "environment variable name"),
        BadLine(line: "IdentityAgent a b", mentions: "one argument"),
        BadLine(line: "GlobalKnownHostsFile none /etc/kh", mentions: "none"),
        BadLine(line: "HashKnownHosts ask", mentions: "yes or no"),
        BadLine(line: "ProxyJump a, b", mentions: "commas"),
        BadLine(line: "ProxyJump ::1", mentions: "host name"),
        BadLine(line: "ProxyJump bastion:0", mentions: "port"),
        BadLine(line: "ProxyJump @bastion", mentions: "user"),
        BadLine(line: "ProxyJump a,,b", mentions: "empty"),
        BadLine(line: "ProxyJump ssh://h/path", mentions: "path"),
        BadLine(line: "ConnectionAttempts three", mentions: "number"),
        BadLine(line: "NumberOfPasswordPrompts three", mentions: "number"),
        BadLine(line: "NumberOfPasswordPrompts -1", mentions: "number"),
        BadLine(line: "PasswordAuthentication ask", mentions: "yes or no"),
        BadLine(line: "PubkeyAuthentication off", mentions: "host-bound"),
        BadLine(line: "KbdInteractiveAuthentication 1", mentions: "yes or no"),
        BadLine(line: "ChallengeResponseAuthentication maybe", mentions: "maybe"),
        BadLine(line: "PreferredAuthentications publickey password", mentions: "one argument"),
        BadLine(line: "AddressFamily ipv6", mentions: "inet6"),
        BadLine(line: "Ciphers aes128-ctr,,aes256-ctr", mentions: "bad list"),
        BadLine(line: "MACs hmac-sha2-256 hmac-sha1", mentions: "one argument"),
    ]

    /// Writes `lines`, runs `tunnel check` and returns what it printed.
    func check(_ lines: [String], name: String = "bad.conf") throws -> (path: String, output: ProcessRunner.Output, cleanup: () -> Void) {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        let file = (dir as NSString).appendingPathComponent(name)
        try CheckTool.write(file, lines)
        let out = try CheckTool.run(tunnel, ["check", file], home: dir)
        return (file, out, { try? FileManager.default.removeItem(atPath: dir) })
    }

    @Test(arguments: badLines)
    func aMalformedLineIsReportedWithFileAndLine(_ bad: BadLine) throws {
        let (file, out, cleanup) = try check(["# a config", "Host x", "  " + bad.line, "  Port 22"])
        defer { cleanup() }
        #expect(out.exit == .exited(1), "\(bad.line): \(out.exit), stderr: \(out.stderrText)")
        let lines = out.stderrText.split(separator: "\n").map(String.init)
        #expect(lines.count == 1, "\(bad.line): expected one problem, got:\n\(out.stderrText)")
        let line = lines.first ?? ""
        #expect(line.hasPrefix("\(file):3: "), "\(bad.line): \(line)")
        #expect(line.lowercased().contains(bad.mentions.lowercased()), "\(bad.line): \(line) should mention \(bad.mentions)")
        #expect(out.stdoutText.isEmpty)
    }

    @Test func everyProblemInAFileIsReported() throws {
        let (file, out, cleanup) = try check([
            "Port nope",                  // 1
            "Host a",                     // 2
            "  LocalForward 8080",        // 3
            "  User fine",                // 4
            "  Bogus 1",                  // 5
            "Host b",                     // 6
            "  StrictHostKeyChecking x",  // 7
            "  LocalForward 1 a:1",       // 8
            "  ConnectTimeout forever",   // 9
        ])
        defer { cleanup() }
        #expect(out.exit == .exited(1))
        let prefixes = out.stderrText.split(separator: "\n").map { $0.prefix { $0 != " " } }
        #expect(prefixes == ["\(file):1:", "\(file):3:", "\(file):5:", "\(file):7:", "\(file):9:"].map { Substring($0) },
                "\(out.stderrText)")
    }

    @Test func problemsInIncludedFilesNameThatFile() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inner = (dir as NSString).appendingPathComponent("inner.conf")
        try CheckTool.write(inner, ["", "Port bad"])
        let file = (dir as NSString).appendingPathComponent("outer.conf")
        try CheckTool.write(file, ["Include \(inner)", "Port alsobad"])
        let out = try CheckTool.run(tunnel, ["check", file], home: dir)
        #expect(out.exit == .exited(1))
        let lines = out.stderrText.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("\(inner):2: ") }, "\(out.stderrText)")
        #expect(lines.contains { $0.hasPrefix("\(file):2: ") }, "\(out.stderrText)")
    }

    @Test func binaryGarbageIsRejectedCleanly() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var generator = SystemRandomNumberGenerator()
        // Raw bytes (NULs and invalid UTF-8), and valid UTF-8 nonsense without NULs.
        let raw = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let words = (0..<20_000).map { _ in String((0..<Int.random(in: 1...12)).map { _ in
            Character(UnicodeScalar(UInt8.random(in: 0x21...0x7e)))
        }) }.joined(separator: " \n\t=\"")
        for (name, bytes) in [("raw.bin", raw), ("words.txt", Array(words.utf8)), ("ls", Array(try Data(contentsOf: URL(fileURLWithPath: "/bin/ls")).prefix(300_000)))] {
            let file = (dir as NSString).appendingPathComponent(name)
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let out = try CheckTool.run(tunnel, ["check", file], home: dir, timeout: 60)
            #expect(out.exit == .exited(1), "\(name): \(out.exit)\n\(out.stderrText.prefix(2000))")
            #expect(!out.stderrText.isEmpty)
            #expect(out.stderrText.split(separator: "\n").count <= 101, "\(name): too many lines")
            #expect(out.stdoutText.isEmpty)
        }
    }

    @Test func aFileOverTenMegabytesIsRejected() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("huge.conf")
        let line = Array("# padding padding padding padding padding padding padding padding padding\n".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(11 << 20)
        while bytes.count <= 10 * 1024 * 1024 { bytes += line }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let out = try CheckTool.run(tunnel, ["check", file], home: dir, timeout: 60)
        #expect(out.exit == .exited(1), "\(out.exit) \(out.stderrText)")
        #expect(out.stderrText.contains("10 MB"), "\(out.stderrText)")
    }

    @Test func anIncludeLoopTerminates() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = (dir as NSString).appendingPathComponent("a.conf")
        let b = (dir as NSString).appendingPathComponent("b.conf")
        try CheckTool.write(a, ["Host x", "  Include \(b)", "  LocalForward 1 x:1"])
        try CheckTool.write(b, ["Include \(a)"])
        let selfLoop = (dir as NSString).appendingPathComponent("self.conf")
        try CheckTool.write(selfLoop, ["Include \(dir)/*.conf"])
        for file in [a, selfLoop] {
            let out = try CheckTool.run(tunnel, ["check", file], home: dir, timeout: 30)
            #expect(out.exit == .exited(1), "\(file): \(out.exit)\n\(out.stderrText)")
            #expect(out.stderrText.lowercased().contains("include"), "\(out.stderrText)")
        }
    }

    @Test func missingFilesDirectoriesAndUnreadableThingsAreErrors() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = (dir as NSString).appendingPathComponent("missing.conf")
        for (path, mentions) in [(missing, "no such file"), (dir, "directory")] {
            let out = try CheckTool.run(tunnel, ["check", path], home: dir)
            #expect(out.exit == .exited(1), "\(path): \(out.exit)")
            #expect(out.stderrText.contains(mentions), "\(out.stderrText)")
            #expect(out.stderrText.split(separator: "\n").count == 1, "\(out.stderrText)")
        }
        let resolve = try CheckTool.run(tunnel, ["check", missing, "--resolve", "x"], home: dir)
        #expect(resolve.exit == .exited(1))
        #expect(resolve.stdoutText.isEmpty)
    }
}

// MARK: - Problems that stay with their hosts; Match exec

@Suite("tunnel check: problems stay with their hosts; Match exec only with --resolve")
struct CheckLocalProblemsTests {
    @Test func aLineOneHostUsesIsAWarningNamingIt() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("mixed.conf")
        try CheckTool.write(file, [
            "Host good",                                   // 1
            "  LocalForward 8080 db:80",                   // 2
            "Host odd",                                    // 3
            "  LocalForward 8081 db:http",                 // 4
            "  RemoteForward /run/user/1000/gnupg/S.gpg-agent /home/u/.gnupg/S.gpg-agent.extra",
        ])
        let out = try CheckTool.run(tunnel, ["check", file], home: dir)
        #expect(out.exit == .exited(0), "\(out.stderrText)")
        #expect(out.stderrText.contains("\(file):4: warning: LocalForward: bad target port \"http\""), "\(out.stderrText)")
        #expect(out.stderrText.contains("host odd uses it and cannot be brought up"), "\(out.stderrText)")
        #expect(out.stdoutText.contains("good: "), "\(out.stdoutText)")
        #expect(!out.stdoutText.contains("odd: "), "\(out.stdoutText)")
        // Asked about that host directly, the problem is an error.
        let odd = try CheckTool.run(tunnel, ["check", file, "--resolve", "odd"], home: dir)
        #expect(odd.exit == .exited(1))
        #expect(odd.stderrText.contains("\(file):4: LocalForward"), "\(odd.stderrText)")
        let good = try CheckTool.run(tunnel, ["check", file, "--resolve", "good"], home: dir)
        #expect(good.exit == .exited(0), "\(good.stderrText)")
    }

    @Test func socketForwardsAreShownAsPaths() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("sockets.conf")
        try CheckTool.write(file, [
            "Host docker",
            "  LocalForward 8080 /var/run/docker.sock",
            "  RemoteForward /run/user/1000/gnupg/S.gpg-agent /home/u/.gnupg/S.gpg-agent.extra",
        ])
        let out = try CheckTool.run(tunnel, ["check", file], home: dir)
        #expect(out.exit == .exited(0), "\(out.stderrText)")
        #expect(out.stdoutText.contains("  LocalForward localhost:8080 -> /var/run/docker.sock (Unix socket: parsed, not active yet)\n"), "\(out.stdoutText)")
        #expect(out.stdoutText.contains("  RemoteForward /run/user/1000/gnupg/S.gpg-agent on the server -> /home/u/.gnupg/S.gpg-agent.extra (parsed, not active yet)\n"), "\(out.stdoutText)")
    }

    @Test func matchExecRunsOnlyWithResolve() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = (dir as NSString).appendingPathComponent("ran")
        let file = (dir as NSString).appendingPathComponent("exec.conf")
        try CheckTool.write(file, [
            "Host a",
            "  LocalForward 8080 db:80",
            "Match exec \"touch \(marker)\"",
            "  Port 2222",
        ])
        let plain = try CheckTool.run(tunnel, ["check", file], home: dir)
        #expect(plain.exit == .exited(0), "\(plain.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: marker), "tunnel check ran a Match exec command")
        #expect(plain.stderrText.contains("\(file):3: warning: Match exec: not run"), "\(plain.stderrText)")
        let resolved = try CheckTool.run(tunnel, ["check", file, "--resolve", "a"], home: dir)
        #expect(resolved.exit == .exited(0), "\(resolved.stderrText)")
        #expect(FileManager.default.fileExists(atPath: marker))
        #expect(resolved.stdoutText.contains("port 2222\n"))
    }

    @Test func aMatchExecThatHangsIsReportedWithItsLine() throws {
        let tunnel = try CheckTool.tunnel()
        let dir = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("slow.conf")
        try CheckTool.write(file, ["Host a", "  LocalForward 8080 db:80", "Match exec \"sleep 60\"", "  Port 2222"])
        let started = Date()
        let out = try CheckTool.run(tunnel, ["check", file, "--resolve", "a"], home: dir, timeout: 60)
        #expect(Date().timeIntervalSince(started) < 45)
        #expect(out.exit == .exited(1))
        #expect(out.stderrText.contains("\(file):3: Match exec \"sleep 60\": did not finish within 10 seconds"), "\(out.stderrText)")
    }
}

// MARK: - The sample configs

@Suite("Config/ samples")
struct CheckSampleConfigTests {
    static var samples: [String] {
        let dir = CheckTool.configDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".conf") }.sorted().map { (dir as NSString).appendingPathComponent($0) }
    }

    @Test func thereAreSamples() {
        let names = Set(Self.samples.map { ($0 as NSString).lastPathComponent })
        for expected in ["tunnels.conf", "bastion-database.conf", "socks-browser.conf", "expose-dev-server.conf",
                         "match-blocks.conf"] {
            #expect(names.contains(expected), "Config/\(expected) is missing")
        }
    }

    @Test(arguments: samples)
    func sampleChecksClean(_ file: String) throws {
        let tunnel = try CheckTool.tunnel()
        let home = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let out = try CheckTool.run(tunnel, ["check", file], home: home)
        #expect(out.exit == .exited(0), "\(file): \(out.exit)\n\(out.stderrText)")
        #expect(out.stderrText.isEmpty, "\(file) gives warnings:\n\(out.stderrText)")
        #expect(!out.stdoutText.contains("no Host has a forward"), "\(file) has no tunnel")
    }

    @Test(.enabled(if: CheckTool.sshPath != nil, "needs the OpenSSH client (ssh -G)"), arguments: samples)
    func sampleAgreesWithOpenSSH(_ file: String) throws {
        let tunnel = try CheckTool.tunnel()
        let home = try CheckTool.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let out = try CheckTool.run(tunnel, ["check", file], home: home)
        let ssh = try #require(CheckTool.sshPath)
        // Each host it brings up (the unindented summary lines) means the same to OpenSSH.
        let hosts = out.stdoutText.split(separator: "\n").filter { !$0.hasPrefix(" ") && !$0.hasPrefix(file) }
            .map { String($0.prefix { $0 != ":" }) }
        #expect(!hosts.isEmpty)
        for host in hosts {
            let ours = try CheckTool.run(tunnel, ["check", file, "--resolve", host], home: home)
            let theirs = try CheckTool.run(ssh, ["-F", file, "-G", host], home: home)
            #expect(theirs.succeeded, "ssh -G \(host): \(theirs.stderrText)")
            #expect(CheckTool.settings(ours.stdoutText) == CheckTool.settings(theirs.stdoutText),
                    "\(file) host \(host):\n--- tunnel\n\(ours.stdoutText)--- ssh -G (filtered)\n\(theirs.stdoutText)")
        }
    }
}
