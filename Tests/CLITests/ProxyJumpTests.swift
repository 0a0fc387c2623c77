// ProxyJump end to end with the built binary: servers inside a network namespace of the test's own, reachable
// only through the first jump host (the test reaches that one through a `NamespaceBridge`). A direct attempt from
// the same config fails, which proves every byte went through the jumps.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A bastion (reached through a bridge) and `inner` servers behind it, all in one fresh network namespace; one
/// client key authorized everywhere, one known_hosts file for all of them.
final class JumpLab: @unchecked Sendable {
    let namespace: NetworkNamespace
    let bastion: SSHDFixture
    let bridge: NamespaceBridge
    let inner: [SSHDFixture]
    let knownHostsPath: String
    var key: String { bastion.clientKeyPath }
    var user: String { bastion.user }

    init(inner count: Int, logLevel: String = "VERBOSE") throws {
        namespace = try NetworkNamespace()
        var options = SSHDFixture.Options()
        options.namespace = namespace
        options.logLevel = logLevel
        bastion = try SSHDFixture(options: options)
        bridge = try NamespaceBridge(into: namespace, port: bastion.port)
        inner = try (0..<count).map { _ in try SSHDFixture(options: options) }
        let keyLine = try SSHDFixture.publicKeyLine(bastion.clientKeyPath + ".pub")
        for server in inner {
            let handle = try #require(FileHandle(forWritingAtPath: server.authorizedKeysPath))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((keyLine + "\n").utf8))
            try handle.close()
        }
        knownHostsPath = bastion.directory + "/jump_known_hosts"
        let lines = ["[127.0.0.1]:\(bridge.port) \(bastion.hostPublicKeyLine)"] + inner.map(\.knownHostsLine)
        try (lines.joined(separator: "\n") + "\n").write(toFile: knownHostsPath, atomically: true, encoding: .utf8)
    }

    /// Servers first (they live in the namespace), then the bridge, then the namespace.
    func stop() {
        for server in inner { server.stop() }
        bastion.stop()
        bridge.stop()
        namespace.delete()
    }

    /// A config: `Host bastion` (through the bridge), `Host hopN`/`target` for the inner servers as `names`
    /// says, the settings every host shares under `Host *` (as a user would write them), then `extra` lines.
    func writeConfig(_ body: [String], name: String = "jump") throws -> String {
        let path = bastion.directory + "/\(name).conf"
        let lines = ["IgnoreUnknown Tunnel*", "Host bastion", "    HostName 127.0.0.1", "    Port \(bridge.port)"]
            + body
            + ["Host *", "    User \(user)", "    IdentityFile \(key)", "    IdentitiesOnly yes", "    IdentityAgent none",
               "    UserKnownHostsFile \(knownHostsPath)",
               "    StrictHostKeyChecking yes", "    ConnectTimeout 10", "    TunnelReconnectDelay 1",
               "    TunnelReconnectMaxDelay 2"]
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static var skipReason: String? { NetworkNamespace.unavailableReason }
}

@Suite("ProxyJump (the binary, servers in a network namespace)", .serialized,
       .enabled(if: JumpLab.skipReason == nil, "needs root and iproute2 to make a network namespace"))
struct ProxyJumpTests {
    /// Sends `text` to a local echo forward and returns what came back.
    static func echo(port: Int, _ text: String) throws -> String {
        let connection = try TCPTestClient.connect(port: port)
        defer { connection.close() }
        try connection.send(Array(text.utf8))
        connection.shutdownWrite()
        return String(decoding: try connection.receiveAll(timeout: 20), as: UTF8.self)
    }

    /// The first line a forward to an sshd's own port gets: its banner ("SSH-2.0-OpenSSH_...").
    static func banner(port: Int) throws -> String {
        let connection = try TCPTestClient.connect(port: port)
        defer { connection.close() }
        return try connection.receiveLine(timeout: 20)
    }

    @Test("two hops: forwards reach the server behind the bastion; the same server from the same config directly: refused")
    func twoHops() async throws { try await onOwnThread { try Self.twoHopsBody() } }
    static func twoHopsBody() throws {
        let lab = try JumpLab(inner: 1)
        defer { lab.stop() }
        let db = lab.inner[0]
        let echoServer = try TCPTestServer(behavior: .echo, unixSocketPath: db.directory + "/echo.sock")
        defer { echoServer.stop() }
        let echoPort = try freeTCPPortOutsideEphemeralRange(), bannerPort = try freeTCPPortOutsideEphemeralRange()
        let config = try lab.writeConfig([
            "Host db", "    HostName 127.0.0.1", "    Port \(db.port)", "    ProxyJump bastion",
            "    LocalForward \(echoPort) \(db.directory)/echo.sock", "    LocalForward \(bannerPort) 127.0.0.1:\(db.port)",
            "Host db-direct", "    HostName 127.0.0.1", "    Port \(db.port)",
        ])
        // The proof that db is only reachable through the bastion: the same settings, no ProxyJump, fail.
        let direct = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect", "db-direct"]).run(timeout: 30)
        #expect(direct.exit == .exited(1), "\(direct.stdoutText)")
        #expect(direct.stdoutText.contains("cannot connect to 127.0.0.1:\(db.port): connection refused"), "\(direct.stdoutText)")

        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config, "db"]).start()
        defer { _ = tunnel.terminate() }
        let connected = try tunnel.waitForLine(containing: "connected to", timeout: 30)
        #expect(connected.contains("db: connected to 127.0.0.1:\(db.port)"), "\(connected)")
        #expect(try echo(port: echoPort, "through the bastion") == "through the bastion")
        #expect(try banner(port: bannerPort).hasPrefix("SSH-2.0-OpenSSH"), "the forward reached db's own port inside the namespace")
        // The bastion logged us in and opened the channel to db; db saw its client come from inside.
        #expect(lab.bastion.log.contains("Accepted publickey for \(lab.user)"), "\(lab.bastion.log)")
        #expect(db.log.contains("Accepted publickey for \(lab.user) from 127.0.0.1"), "\(db.log)")
        #expect(tunnel.isRunning)
    }

    @Test("three hops (ProxyJump bastion,mid), the middle hop's settings from Host * only; killing the middle sshd: sessions come back")
    func threeHopsAndMiddleKilled() async throws { try await onOwnThread { try Self.threeHopsBody() } }
    static func threeHopsBody() throws {
        let lab = try JumpLab(inner: 2)
        defer { lab.stop() }
        let mid = lab.inner[0], db = lab.inner[1]
        let echoServer = try TCPTestServer(behavior: .echo, unixSocketPath: db.directory + "/echo.sock")
        defer { echoServer.stop() }
        let echoPort = try freeTCPPortOutsideEphemeralRange()
        // `mid` has no Host block: user, key, known_hosts come from Host *; the entry gives host and port.
        let config = try lab.writeConfig([
            "Host db", "    HostName 127.0.0.1", "    Port \(db.port)", "    ProxyJump bastion,127.0.0.1:\(mid.port)",
            "    LocalForward \(echoPort) \(db.directory)/echo.sock",
        ])
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config, "db"]).start()
        defer { _ = tunnel.terminate() }
        try tunnel.waitForLine(containing: "connected to", timeout: 30)
        #expect(try echo(port: echoPort, "three hops") == "three hops")
        #expect(mid.log.contains("Accepted publickey for \(lab.user) from 127.0.0.1"), "\(mid.log)")
        #expect(db.log.contains("Accepted publickey for \(lab.user) from 127.0.0.1"), "\(db.log)")
        let bastionLogins = lab.bastion.log.components(separatedBy: "Accepted publickey").count - 1
        #expect(bastionLogins == 1)

        mid.crash()
        let lost = try tunnel.waitForLine(containing: "connection lost", timeout: 30)
        #expect(lost.contains("db via bastion, 127.0.0.1:\(mid.port): 127.0.0.1:\(mid.port): connection lost"), "the loss names the middle hop: \(lost)")
        try mid.start()
        try tunnel.waitForLine(containing: "db: reconnected to", timeout: 30)
        #expect(try echo(port: echoPort, "back again") == "back again")
        // The chain was set up again from the broken hop: the bastion's session stayed up throughout.
        let bastionLoginsAfter = lab.bastion.log.components(separatedBy: "Accepted publickey").count - 1
        #expect(bastionLoginsAfter == 1, "the bastion was not logged into again: \(lab.bastion.log)")
        #expect(tunnel.isRunning)
    }

    @Test("a jump host that refuses: the error names the hop, and check --connect says per hop what happened")
    func refusingJumpHost() async throws { try await onOwnThread { try Self.refusingBody() } }
    static func refusingBody() throws {
        let lab = try JumpLab(inner: 1)
        defer { lab.stop() }
        let db = lab.inner[0]
        let closed = try freeTCPPortOutsideEphemeralRange()
        let config = try lab.writeConfig([
            "Host gate", "    HostName 127.0.0.1", "    Port \(closed)",
            "Host db", "    HostName 127.0.0.1", "    Port \(db.port)", "    ProxyJump gate,bastion",
            "    LocalForward 40998 127.0.0.1:9",
        ])
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect", "db"]).run(timeout: 30)
        #expect(output.exit == .exited(1), "\(output.stdoutText)")
        let text = output.stdoutText
        #expect(text.contains("FAILED: db via gate, bastion: gate: cannot connect to 127.0.0.1:\(closed): connection refused"), "\(text)")
        #expect(text.contains("  jump host gate (\(lab.user)@127.0.0.1:\(closed)): FAILED: cannot connect to 127.0.0.1:\(closed): connection refused"), "\(text)")
        #expect(text.contains("  jump host bastion (\(lab.user)@127.0.0.1:\(lab.bridge.port)): not tried"), "\(text)")
    }

    @Test("check --connect through a jump: each hop's handshake, then the target's; --json lists the hops")
    func checkThroughJump() async throws { try await onOwnThread { try Self.checkBody() } }
    static func checkBody() throws {
        let lab = try JumpLab(inner: 1)
        defer { lab.stop() }
        let db = lab.inner[0]
        let config = try lab.writeConfig([
            "Host db", "    HostName 127.0.0.1", "    Port \(db.port)", "    ProxyJump bastion", "    LocalForward 40997 127.0.0.1:9",
        ])
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect", "db"]).run(timeout: 30)
        #expect(output.exit == .exited(0), "\(output.stdoutText)\n\(output.stderrText)")
        let text = output.stdoutText
        #expect(text.contains("db: \(lab.user)@127.0.0.1:\(db.port) via bastion\n"), "\(text)")
        #expect(text.contains("  jump host bastion (\(lab.user)@127.0.0.1:\(lab.bridge.port)): up: server identity ssh-ed25519 \(lab.bastion.hostKeyFingerprint), found in \(lab.knownHostsPath):1;"), "\(text)")
        #expect(text.contains("  server identity: ssh-ed25519 \(db.hostKeyFingerprint), found in \(lab.knownHostsPath):2;"), "\(text)")
        #expect(text.hasSuffix("1 of 1 host passed\n"), "\(text)")

        let json = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect", "--json", "db"]).run(timeout: 30)
        #expect(json.exit == .exited(0), "\(json.stderrText)")
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdoutText.utf8)) as? [[String: Any]]
        let hops = try #require(parsed?.first?["jumpHosts"] as? [[String: Any]], "\(json.stdoutText)")
        #expect(hops.count == 1)
        #expect(hops.first?["host"] as? String == "bastion")
        #expect(hops.first?["outcome"] as? String == "up")
    }
}

@Suite("ProxyJump in tunnel check and tunnel up (no servers)")
struct ProxyJumpCheckTests {
    @Test("a ProxyJump loop: tunnel check says the host is not brought up, tunnel up refuses it and connects nowhere")
    func loopIsRefused() throws {
        let directory = NSTemporaryDirectory() + "tunnel-jump-loop-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/loop.conf"
        let closed = try freeTCPPortOutsideEphemeralRange(), local = try freeTCPPortOutsideEphemeralRange()
        try "Host db\n  HostName 127.0.0.1\n  Port \(closed)\n  User jumper\n  LocalForward \(local) 127.0.0.1:9\nHost *\n  ProxyJump bastion\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let check = try ProcessRunner(try CheckTool.tunnel(), ["check", path]).run(timeout: 20)
        #expect(check.stdoutText.contains("db: jumper@127.0.0.1:\(closed)\n  not brought up: ProxyJump loop: "), "\(check.stdoutText)")
        let up = try ProcessRunner(try CheckTool.tunnel(), ["up", path]).run(timeout: 20)
        #expect(up.exit == .exited(1), "\(up.stderrText)")
        #expect(up.stderrText.contains("db: error: ") && up.stderrText.contains("ProxyJump loop: "), "\(up.stderrText)")
        #expect(!up.stderrText.contains("cannot connect"), "nothing is connected to, directly or not: \(up.stderrText)")
    }
}
