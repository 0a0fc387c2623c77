// The two programs compared: `tunnel up` and OpenSSH's `ssh -N -L`, each started fresh against the same sshd,
// forwarding one local port to one target on 127.0.0.1.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Which forwarding program, and how to start it.
enum ForwarderKind: Sendable {
    case tunnel(binary: String)
    /// `ssh -N -L` with extra client options (e.g. `-c aes128-ctr`); `label` names it in tables.
    case openSSH(label: String, options: [String])

    var label: String {
        switch self {
        case .tunnel: return "tunnel up"
        case .openSSH(let label, _): return label
        }
    }

    static let defaultOpenSSH = ForwarderKind.openSSH(label: "ssh -L", options: [])
}

/// A running forwarder: 127.0.0.1:`localPort` -> 127.0.0.1:`targetPort` through the sshd. Stop it with `stop()`.
/// With `remote`, it is a remote forward (`RemoteForward`, `ssh -R`): sshd listens on `localPort` and the
/// forwarder connects each connection to the target from its side.
final class Forwarder {
    let kind: ForwarderKind
    let remote: Bool
    let localPort: Int
    private let process: RunningProcess
    /// tunnel's control socket (its own, so forwarders running side by side do not share one); nil for ssh.
    private let controlPath: String?
    static let startTimeout: Double = 20

    /// The forwarding process: the one whose CPU time counts.
    var pid: pid_t { process.pid }

    /// The running process itself, for cases that read its log or wait for it to exit.
    var running: RunningProcess { process }

    /// `extraConfig`: more lines for tunnel's Host block (e.g. `ServerAliveInterval 2`).
    /// `via`: reach the sshd through this relay (a long link) instead of directly.
    init(_ kind: ForwarderKind, sshd: SSHDFixture, targetPort: Int, remote: Bool = false, extraConfig: [String] = [],
         via relay: TCPTestServer? = nil) throws {
        self.kind = kind
        self.remote = remote
        let localPort = try freeTCPPort()
        self.localPort = localPort
        // Through a relay the server is known under the relay's port: a known_hosts file of its own says so.
        let sshPort = relay?.port ?? sshd.port
        var knownHosts = sshd.knownHostsPath
        if let relay {
            knownHosts = sshd.directory + "/known_hosts-relay-\(relay.port)"
            try "[\(sshd.host)]:\(relay.port) \(sshd.hostPublicKeyLine)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        }
        switch kind {
        case .tunnel(let binary):
            let config = sshd.directory + "/bench-\(localPort).conf"
            let controlPath = sshd.directory + "/bench-\(localPort).sock"
            self.controlPath = controlPath
            try """
                Host bench
                    HostName \(sshd.host)
                    Port \(sshPort)
                    User \(sshd.user)
                    IdentityFile \(sshd.clientKeyPath)
                    UserKnownHostsFile \(knownHosts)
                    \(remote ? "RemoteForward" : "LocalForward") \(loopback):\(localPort) \(loopback):\(targetPort)
                """.appending(extraConfig.map { "\n    " + $0 }.joined() + "\n")
                .write(toFile: config, atomically: true, encoding: .utf8)
            // Log only warnings: a line per connection would be captured in memory for thousands of connections.
            // TUNNEL_BENCH_LOG=DIR: log at debug level instead (receive windows, per connection) into DIR.
            process = try ProcessRunner(binary, ["up", "--log-level", Self.logDirectory == nil ? "warning" : "debug",
                                                 "--control", controlPath, config]).start()
            // At warning level the "connected" line is not printed: wait for the port instead, then for the
            // session (a client accepted before it is ready waits, so a round trip proves the whole path).
        case .openSSH(_, let options):
            controlPath = nil
            // sshOptions names the sshd's own port and known_hosts; through a relay, the relay's.
            var sshOptions = sshd.sshOptions()
            if relay != nil {
                sshOptions = sshOptions.map {
                    $0 == String(sshd.port) ? String(sshPort) : $0 == "UserKnownHostsFile=\(sshd.knownHostsPath)" ? "UserKnownHostsFile=\(knownHosts)" : $0
                }
            }
            process = try ProcessRunner("/usr/bin/ssh", sshOptions + options
                + ["-N", "-o", "ExitOnForwardFailure=yes",
                   remote ? "-R" : "-L", "\(loopback):\(localPort):\(loopback):\(targetPort)", sshd.destination]).start()
        }
        let process = self.process
        do {
            // A remote forward's port is sshd's: it listens once the forwarder's request was granted.
            try waitUntil(timeout: Self.startTimeout, "\(kind.label) to listen on \(loopback):\(localPort)") {
                !process.isRunning || TCPTestClient.isAccepting(host: loopback, port: localPort)
            }
            guard process.isRunning else {
                throw BenchError("\(kind.label) exited (\(process.exitStatus!)) before listening\n" + process.outputSummary())
            }
        } catch {
            _ = process.terminate()
            throw error
        }
    }

    /// Where tunnel's debug logs go (`TUNNEL_BENCH_LOG`), or nil: tunnel logs only warnings.
    static let logDirectory = ProcessInfo.processInfo.environment["TUNNEL_BENCH_LOG"]

    /// CPU time (user + system, all threads) the forwarding process has used so far, in milliseconds, from
    /// /proc/PID/stat. Its resolution is one clock tick (10 ms at the usual 100 Hz).
    func cpuMilliseconds() throws -> Double {
        try ProcessStats.cpuMilliseconds(pid)
    }

    /// What the session negotiated, as "cipher aes128-ctr, MAC hmac-sha2-256" (each way when they differ): for
    /// tunnel from `tunnel status --json` over its control socket, once its session is up; for ssh, what its
    /// `-c`/`-m` options ask for (OpenSSH's default when none).
    func negotiated() -> String {
        guard case .tunnel(let binary) = kind, let controlPath else {
            guard case .openSSH(_, let options) = kind, !options.isEmpty else { return "OpenSSH's default" }
            return "asked for with " + options.joined(separator: " ")
        }
        guard let output = try? ProcessRunner(binary, ["status", "--json", "--control", controlPath]).run(timeout: 10),
              let reply = try? JSONSerialization.jsonObject(with: Data(output.stdoutText.utf8)) as? [String: Any],
              let host = ((reply["status"] as? [String: Any])?["hosts"] as? [[String: Any]])?.first, host["state"] as? String == "up" else {
            return "unknown (no session up)"
        }
        func pair(_ out: String, _ inbound: String) -> String {
            let a = host[out] as? String ?? "?", b = host[inbound] as? String ?? "?"
            return a == b ? a : "\(a) out, \(b) in"
        }
        return "cipher \(pair("cipherOut", "cipherIn")), MAC \(pair("macOut", "macIn"))"
    }

    /// The client-to-server cipher in what `negotiated()` said for tunnel; nil for ssh, or with no session up.
    static func cipher(inNegotiated text: String) -> String? {
        guard text.hasPrefix("cipher ") else { return nil }
        return text.dropFirst("cipher ".count).split(whereSeparator: { $0 == "," || $0 == " " }).first.map(String.init)
    }

    /// Peak resident memory of the forwarding process so far.
    var peakRSSKiB: Int? { ProcessStats.peakRSSKiB(pid) }

    /// Stops it (SIGTERM, SIGKILL after 5 s); throws if it had already exited, since then the figures are void.
    func stop() throws {
        let alreadyDead = !process.isRunning
        _ = process.terminate()
        if let directory = Self.logDirectory, case .tunnel = kind {
            let path = directory + "/tunnel-\(localPort).log"
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: path, contents: Data(process.stderrBytes))
            printNow("  (tunnel's log: \(path))")
        }
        if alreadyDead {
            throw BenchError("\(kind.label) exited during the measurement (\(process.exitStatus.map { "\($0)" } ?? "?"))\n"
                + process.outputSummary())
        }
    }

    /// Starts a forwarder, runs `body` with it and stops it, also when `body` throws.
    static func with<R>(_ kind: ForwarderKind, sshd: SSHDFixture, targetPort: Int, _ body: (Forwarder) throws -> R) throws -> R {
        let forwarder = try Forwarder(kind, sshd: sshd, targetPort: targetPort)
        let result: R
        do {
            result = try body(forwarder)
        } catch {
            try? forwarder.stop()
            throw error
        }
        try forwarder.stop()
        return result
    }
}
