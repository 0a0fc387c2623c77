import Foundation
import Testing
import TunnelConfig

/// Compares `resolve(host:)` with what OpenSSH itself computes (`ssh -F file -G host`)
/// for the keywords tunnel acts on. Skipped when `ssh` is not installed.
@Suite("Same answers as ssh -G", .enabled(if: OpenSSH.path != nil, "ssh is not installed"))
struct OpenSSHOracleTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var hosts: [String]
        var lines: [String]
        var testDescription: String { lines.joined(separator: " | ") }
    }

    static let cases: [Case] = [
        Case(hosts: ["db", "web", "x"], lines: [
            "Host db",
            "  HostName %h.Example.COM",
            "  User deploy",
            "  Port 2222",
            "  IdentityFile ~/.ssh/id_db",
            "  LocalForward 127.0.0.1:15432 db.internal:5432",
            "  LocalForward 8080 intranet.example.com:80",
            "Host web*",
            "  Port 2200",
            "  StrictHostKeyChecking accept-new",
            "Host *",
            "  User fallback",
            "  IdentityFile ~/.ssh/id_all",
            "  IdentityFile ~/.ssh/id_db",
            "  LocalForward [::1]:9000 [fe80::1]:80",
        ]),
        Case(hosts: ["a.internal", "secret.internal", "b"], lines: [
            "StrictHostKeyChecking off",
            "Host *.internal !secret.internal",
            "  UserKnownHostsFile ~/.ssh/kh_%h /etc/kh_%n_%p",
            "  LocalForward *:1234 a:1",
            "  LocalForward :1235 a:2",
            "  LocalForward localhost:1236 a:3",
            "Host secret.internal",
            "  UserKnownHostsFile none",
            "  Port=2022",
        ]),
        // Remote dynamic forwarding and where its connections may go (first PermitRemoteOpen wins).
        Case(hosts: ["rd", "open", "shut", "other"], lines: [
            "Host rd",
            "  RemoteForward 1080",
            "  RemoteForward 127.0.0.1:1081",
            "  PermitRemoteOpen 127.0.0.1:80 *:22 [::1]:* db.internal:5432",
            "Host open",
            "  PermitRemoteOpen any",
            "Host shut",
            "  PermitRemoteOpen none",
            "Host *",
            "  PermitRemoteOpen localhost:1",
        ]),
        // tunnel's own keywords, covered by the documented IgnoreUnknown line: ssh reads the same file.
        Case(hosts: ["db"], lines: [
            "IgnoreUnknown Tunnel*",
            "Host db",
            "  Port 2222",
            "  TunnelReconnectDelay 2",
            "  TunnelReconnectMaxDelay 5m",
            "  ServerAliveInterval 20",
            "  LocalForward 15432 db.internal:5432",
        ]),
        Case(hosts: ["q", "Q"], lines: [
            "Host=q",
            "  User = \"deploy\"",
            "  HostName \"Quoted.Example\" # comment",
            "  IdentityFile \"~/my keys/id\"",
            "  StrictHostKeyChecking TRUE",
            "  GatewayPorts yes",
            "  LocalForward 7000 db:1",
            "  LocalForward 127.0.0.1:7001 db:2",
            "Host Q",
            "  StrictHostKeyChecking no",
        ]),
        Case(hosts: ["jump", "agent", "legacy", "other"], lines: [
            "Host jump",
            "  HostName jump.example.com",
            "  IdentityAgent ~/.ssh/agent_%h_%p_%r",
            "  GlobalKnownHostsFile /etc/kh_a /etc/kh_b",
            "  HashKnownHosts yes",
            "  ProxyJump admin@bastion:2222,[2001:db8::7]:22,10.1.2.3",
            "  ConnectionAttempts 4",
            "  PasswordAuthentication no",
            "  PubkeyAuthentication unbound",
            "  ChallengeResponseAuthentication no",
            "  PreferredAuthentications publickey,password",
            "  BindAddress 127.0.0.1",
            "  AddressFamily INET",
            "Host agent",
            "  IdentityAgent SSH_AUTH_SOCK",
            "  ProxyJump none",
            "  GlobalKnownHostsFile none",
            "Host legacy",
            "  IdentityAgent $SSH_AUTH_SOCK",
            "  ProxyCommand nc %h %p",
            "Host *",
            "  IdentityAgent none",
            "  ProxyJump fallback",
            "  ConnectionAttempts 2",
            "  PubkeyAuthentication no",
            "  KbdInteractiveAuthentication no",
            "  AddressFamily inet6",
        ]),
    ]

    /// The keywords compared below (those tunnel resolves), beyond the ones checked one by one.
    static let keywords = [
        "hostname", "port", "user", "identityfile", "userknownhostsfile", "stricthostkeychecking", "gatewayports",
        "localforward", "identityagent", "globalknownhostsfile", "hashknownhosts", "proxyjump", "proxycommand", "connectionattempts",
        "passwordauthentication", "pubkeyauthentication", "kbdinteractiveauthentication", "preferredauthentications",
        "bindaddress", "addressfamily", "permitremoteopen",
    ]

    @Test(arguments: cases)
    func matchesOpenSSH(_ c: Case) throws {
        let dir = try TemporaryDirectory()
        let file = dir.write("oracle.conf", c.lines.joined(separator: "\n") + "\n")
        let context = ConfigContext.current
        let config = try TunnelConfigFile.load(path: file, context: context)
        for host in c.hosts {
            let ssh = try OpenSSH.dump(config: file, host: host)
            let ours = config.resolve(host: host)
            #expect(ssh["hostname"] == [ours.hostName], "\(host)")
            #expect(ssh["port"] == [String(ours.port)], "\(host)")
            #expect(ssh["user"] == [ours.user], "\(host)")
            // ssh -G prints identity files unexpanded.
            let sshIdentities = (ssh["identityfile"] ?? []).map { OpenSSH.expandTilde($0, home: context.homeDirectory) }
            #expect(sshIdentities == ours.identityFiles, "\(host)")
            let knownHosts = ssh["userknownhostsfile"]?.first.map { $0 == "none" ? [] : $0.split(separator: " ").map(String.init) }
            #expect(knownHosts == ours.userKnownHostsFiles, "\(host)")
            let strict: StrictHostKeyChecking? = switch ssh["stricthostkeychecking"]?.first {
            case "true": .yes
            case "false": .no
            case "ask": .ask
            case "accept-new": .acceptNew
            default: nil
            }
            #expect(strict == ours.strictHostKeyChecking, "\(host)")
            let gatewayPorts = ssh["gatewayports"] == ["yes"]
            let sshForwards = try (ssh["localforward"] ?? []).map { try OpenSSH.forward($0, gatewayPorts: gatewayPorts) }
            #expect(sshForwards == ours.localForwards.map { OpenSSH.Forward(bind: $0.bind, listen: $0.listenPort, host: $0.targetHost, port: $0.targetPort) }, "\(host)")

            let agent: IdentityAgent? = ssh["identityagent"]?.first.map { value in
                if value.lowercased() == "none" { return .disabled }
                if value == "SSH_AUTH_SOCK" { return .environment(value) }
                if value.hasPrefix("$") { return .environment(String(value.dropFirst())) }
                return .socket(value)
            }
            #expect(agent == ours.identityAgent, "\(host)")
            let global = ssh["globalknownhostsfile"]?.first.map { $0 == "none" ? [] : $0.split(separator: " ").map(String.init) }
            #expect(global == ours.globalKnownHostsFiles, "\(host)")
            #expect(ssh["hashknownhosts"] == [ours.hashKnownHosts ? "yes" : "no"], "\(host)")
            // The cases write every hop the way ssh -G prints it.
            #expect(ssh["proxyjump"]?.first == ours.proxyJump?.map(\.description).joined(separator: ","), "\(host)")
            #expect(ssh["connectionattempts"] == [String(ours.connectionAttempts)], "\(host)")
            #expect(ssh["passwordauthentication"] == [ours.passwordAuthentication ? "yes" : "no"], "\(host)")
            #expect((ssh["pubkeyauthentication"] != ["false"]) == ours.pubkeyAuthentication, "\(host)")
            #expect(ssh["kbdinteractiveauthentication"] == [ours.kbdInteractiveAuthentication ? "yes" : "no"], "\(host)")
            #expect(ssh["preferredauthentications"]?.first == ours.preferredAuthentications?.map(\.rawValue).joined(separator: ","), "\(host)")
            #expect(ssh["bindaddress"]?.first == ours.bindAddress, "\(host)")
            #expect(ssh["addressfamily"] == [ours.addressFamily.rawValue], "\(host)")
            #expect(ssh["permitremoteopen"] == [ours.permitRemoteOpen.description], "\(host)")

            // And the `ssh -G` text itself, keyword by keyword.
            let printed = Dictionary(grouping: config.resolvedSettings(host: host), by: \.keyword).mapValues { $0.map(\.value) }
            for keyword in Self.keywords {
                #expect(printed[keyword] == ssh[keyword], "\(host): \(keyword)")
            }
        }
    }
}

enum OpenSSH {
    static let path: String? = ["/usr/bin/ssh", "/usr/local/bin/ssh", "/opt/homebrew/bin/ssh"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// `ssh -F config -G host` as keyword → values (a keyword may repeat).
    static func dump(config: String, host: String) throws -> [String: [String]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path!)
        process.arguments = ["-F", config, "-G", host]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Failure(description: "ssh -G exited \(process.terminationStatus)") }
        var result: [String: [String]] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            result[String(parts[0]), default: []].append(String(parts[1]))
        }
        return result
    }

    static func expandTilde(_ path: String, home: String) -> String {
        path == "~" ? home : path.hasPrefix("~/") ? home + path.dropFirst() : path
    }

    struct Forward: Equatable, CustomStringConvertible {
        var bind: BindAddress
        var listen: Int
        var host: String
        var port: Int
        var description: String { "\(bind):\(listen) -> \(host):\(port)" }
    }

    /// `8080 [db]:5432` or `[::1]:8080 [fe80::1]:80` (how ssh -G prints a LocalForward).
    static func forward(_ text: String, gatewayPorts: Bool) throws -> Forward {
        let halves = text.split(separator: " ")
        guard halves.count == 2 else { throw Failure(description: "odd forward \(text)") }
        func hostPort(_ s: Substring) throws -> (String, Int) {
            guard s.hasPrefix("["), let close = s.lastIndex(of: "]"),
                  let port = Int(s[s.index(close, offsetBy: 2)...]) else { throw Failure(description: "odd forward \(text)") }
            return (String(s[s.index(after: s.startIndex)..<close]), port)
        }
        let bind: BindAddress
        let listen: Int
        if let port = Int(halves[0]) {
            bind = gatewayPorts ? .any : .loopback
            listen = port
        } else {
            let (address, port) = try hostPort(halves[0])
            bind = address == "*" || address.isEmpty ? .any : address == "localhost" ? .loopback : .address(address)
            listen = port
        }
        let (host, port) = try hostPort(halves[1])
        return Forward(bind: bind, listen: listen, host: host, port: port)
    }
}
