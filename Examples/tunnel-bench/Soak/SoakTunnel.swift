// The `tunnel up` process under test: one LocalForward to the echo server and one DynamicForward (SOCKS5/HTTP
// proxy), on 127.0.0.1, optionally with a low open-file limit. Its /proc figures are what the soak judges.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

final class SoakTunnel: Sendable {
    let forwardPort: Int
    let proxyPort: Int
    let echoPort: Int
    let process: RunningProcess

    var pid: pid_t { process.pid }
    var openDescriptors: Int? { ProcessStats.openDescriptors(pid) }
    var rssKiB: Int? { ProcessStats.rssKiB(pid) }

    /// `fileLimit`: RLIMIT_NOFILE for the tunnel process alone (set by `ulimit -n` in a shell that then execs it).
    init(binary: String, sshd: SSHDFixture, echoPort: Int, fileLimit: Int? = nil, name: String = "soak") throws {
        self.echoPort = echoPort
        forwardPort = try freeTCPPort()
        proxyPort = try freeTCPPort()
        let config = sshd.directory + "/\(name)-\(forwardPort).conf"
        try """
            Host \(name)
                HostName \(sshd.host)
                Port \(sshd.port)
                User \(sshd.user)
                IdentityFile \(sshd.clientKeyPath)
                UserKnownHostsFile \(sshd.knownHostsPath)
                ServerAliveInterval 2
                ServerAliveCountMax 2
                LocalForward \(loopback):\(forwardPort) \(loopback):\(echoPort)
                DynamicForward \(loopback):\(proxyPort)

            """.write(toFile: config, atomically: true, encoding: .utf8)
        // Warnings only: a line per connection would pile up in memory over hundreds of thousands of connections.
        let arguments = ["up", "--log-level", "warning", config]
        if let fileLimit {
            process = try ProcessRunner("/bin/sh", ["-c", "ulimit -n \(fileLimit) && exec \"$0\" \"$@\"", binary] + arguments).start()
        } else {
            process = try ProcessRunner(binary, arguments).start()
        }
        let ports = [forwardPort, proxyPort]
        let process = self.process
        do {
            try waitUntil(timeout: Forwarder.startTimeout, "tunnel up to listen on \(ports)") {
                !process.isRunning || ports.allSatisfy { TCPTestClient.isAccepting(host: loopback, port: $0) }
            }
            guard process.isRunning else { throw BenchError("tunnel up exited before listening\n" + process.outputSummary()) }
            try verifyServing(within: 30)
        } catch {
            _ = process.terminate()
            throw error
        }
    }

    /// The two ways to the echo server: the LocalForward, and the proxy asked for the echo server.
    var routes: [ExchangeRoute] { [.forward(port: forwardPort), .socks5(proxyPort: proxyPort, targetPort: echoPort)] }

    /// Throws unless one checked exchange succeeds through the forward and one through the proxy, retrying for
    /// `seconds` (after an sshd restart the session takes a moment to come back).
    func verifyServing(within seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        for route in routes {
            var last = "nothing tried"
            while true {
                guard process.isRunning else { throw BenchError("tunnel up exited\n" + process.outputSummary()) }
                if let socket = try? route.connect(timeout: 5) {
                    let payload = Payload(size: 4096, seed: 42)
                    let outcome = Exchange.run(on: socket, payload: payload, offset: 0, count: 4096, stallLimit: 5)
                    socket.close()
                    if case .verified = outcome { break }
                    last = "\(outcome)"
                } else {
                    last = "connect failed"
                }
                guard Date() < deadline else { throw BenchError("no checked exchange through \(route) within \(Int(seconds)) s: \(last)") }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    func stop() throws {
        let alreadyDead = !process.isRunning
        _ = process.terminate()
        if alreadyDead { throw BenchError("tunnel up had exited\n" + process.outputSummary()) }
    }
}
