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
            process = try ProcessRunner(binary, ["up", "--log-level", "warning", config]).start()
            // At warning level the "connected" line is not printed: wait for the port instead, then for the
            // session (a client accepted before it is ready waits, so a round trip proves the whole path).
        case .openSSH(_, let options):
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

    /// CPU time (user + system, all threads) the forwarding process has used so far, in milliseconds, from
    /// /proc/PID/stat. Its resolution is one clock tick (10 ms at the usual 100 Hz).
    func cpuMilliseconds() throws -> Double {
        try ProcessStats.cpuMilliseconds(pid)
    }

    /// Peak resident memory of the forwarding process so far.
    var peakRSSKiB: Int? { ProcessStats.peakRSSKiB(pid) }

    /// Stops it (SIGTERM, SIGKILL after 5 s); throws if it had already exited, since then the figures are void.
    func stop() throws {
        let alreadyDead = !process.isRunning
        _ = process.terminate()
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
