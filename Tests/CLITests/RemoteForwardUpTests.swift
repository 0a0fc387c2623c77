// `tunnel up` with RemoteForward lines, end to end: the built binary, a throwaway sshd, curl on the server's side.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("tunnel up with RemoteForward (the binary)", .serialized)
struct RemoteForwardUpTests {
    /// A config for `sshd` with only the given forward lines.
    static func writeConfig(_ sshd: SSHDFixture, name: String = "expose", lines forwards: [String]) throws -> String {
        let path = sshd.directory + "/\(name).conf"
        let lines = [
            "# written by RemoteForwardUpTests",
            "Host \(name)",
            "    HostName \(sshd.host)",
            "    Port \(sshd.port)",
            "    User \(sshd.user)",
            "    IdentityFile \(sshd.clientKeyPath)",
            "    UserKnownHostsFile \(sshd.knownHostsPath)",
        ] + forwards.map { "    " + $0 }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("RemoteForward 0 and a fixed port: the chosen port is logged, and curl on the server's side reaches the local server")
    func serverChosenPortWithCurl() throws {
        let sshd = try SSHDFixture()
        let http = try TCPTestServer(behavior: .http(body: "hello from this side\n"))
        let fixed = try freeTCPPortOutsideEphemeralRange()  // checked as no longer listened on at the end
        let config = try Self.writeConfig(sshd, lines: [
            "RemoteForward 127.0.0.1:0 127.0.0.1:\(http.port)",
            "RemoteForward 127.0.0.1:\(fixed) 127.0.0.1:\(http.port)",
        ])
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }

        let chosenLine = try tunnel.waitForLine(containing: "chosen by the server", timeout: 20)
        let prefix = "expose: RemoteForward 127.0.0.1:"
        #expect(chosenLine.hasPrefix(prefix), "\(chosenLine)")
        let port = Int(chosenLine.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0
        #expect(port > 0, "\(chosenLine)")
        #expect(chosenLine.contains("-> 127.0.0.1:\(http.port): the server listens (port \(port), chosen by the server)"), "\(chosenLine)")
        try tunnel.waitForLine(containing: "RemoteForward 127.0.0.1:\(fixed) -> 127.0.0.1:\(http.port): the server listens", timeout: 20)

        for serverPort in [port, fixed] {
            let curl = try ProcessRunner("curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(serverPort)/x"]).runChecked(timeout: 20)
            #expect(curl.stdoutText == "hello from this side\n")
        }
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 10) == .exited(0), "\(tunnel.outputSummary())")
        // The server's listeners went with the session.
        try waitUntil(timeout: 10, "sshd to close the forwarded port") { !TCPTestClient.isAccepting(port: fixed) }
    }

    @Test("RemoteForward PORT alone with PermitRemoteOpen from the file: curl --socks5-hostname on the server's side reaches the allowed server; another target is refused and logged")
    func remoteDynamicWithPermitRemoteOpen() throws {
        let sshd = try SSHDFixture()
        let http = try TCPTestServer(behavior: .http(body: "through remote SOCKS\n"))
        let other = try TCPTestServer(behavior: .http(body: "must not be reached\n"))
        let port = try freeTCPPortOutsideEphemeralRange()
        let config = try Self.writeConfig(sshd, lines: ["RemoteForward 127.0.0.1:\(port)", "PermitRemoteOpen localhost:\(http.port)"])
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        try tunnel.waitForLine(containing: "RemoteForward 127.0.0.1:\(port) -> SOCKS proxy here (remote dynamic): the server listens", timeout: 20)

        let curl = try ProcessRunner("curl", ["-sS", "--max-time", "10", "--socks5-hostname", "127.0.0.1:\(port)", "http://localhost:\(http.port)/x"],
                                     extraEnvironment: ["all_proxy": "", "ALL_PROXY": ""]).runChecked(timeout: 20)
        #expect(curl.stdoutText == "through remote SOCKS\n")
        let refused = try ProcessRunner("curl", ["-sS", "--max-time", "10", "--socks5-hostname", "127.0.0.1:\(port)", "http://localhost:\(other.port)/x"],
                                        extraEnvironment: ["all_proxy": "", "ALL_PROXY": ""]).run(timeout: 20)
        #expect(!refused.succeeded)
        #expect(other.connectionsAccepted == 0)
        let line = try tunnel.waitForLine(containing: "is not allowed by PermitRemoteOpen", timeout: 10)
        #expect(line.contains("localhost:\(other.port) is not allowed by PermitRemoteOpen localhost:\(http.port)"), "\(line)")
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 10) == .exited(0), "\(tunnel.outputSummary())")
        #expect(!tunnel.outputSummary().contains("not supported"), "\(tunnel.outputSummary())")
    }

    @Test("ExitOnForwardFailure yes and a server that forbids remote forwards: the host does not come up, the error has the server's words")
    func exitOnForwardFailure() throws {
        let sshd = try SSHDFixture(options: { var o = SSHDFixture.Options(); o.extraConfig = ["AllowTcpForwarding local"]; return o }())
        let port = try freeTCPPort()
        let config = try Self.writeConfig(sshd, lines: ["RemoteForward 127.0.0.1:\(port) 127.0.0.1:9", "ExitOnForwardFailure yes"])
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        // Each attempt ends with the refusal and is retried with the reconnect backoff; the host never comes up.
        let error = try tunnel.waitForLine(containing: "the server refused to listen", timeout: 20)
        #expect(error.hasPrefix("expose: error: RemoteForward 127.0.0.1:\(port) -> 127.0.0.1:9: the server refused to listen: \"Server has disabled port forwarding.\" (ExitOnForwardFailure yes); retrying in"),
                "\(error)")
        try waitUntil(timeout: 20, "a second attempt, refused too") {
            sshd.log.components(separatedBy: "Accepted publickey").count - 1 >= 2
        }
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 10) == .exited(0), "\(tunnel.outputSummary())")
        #expect(!tunnel.outputSummary().contains("connected to"), "the host must not come up: \(tunnel.outputSummary())")
    }

    @Test("ExitOnForwardFailure no: a refused RemoteForward is a warning, and the host's LocalForward works")
    func refusedButUp() throws {
        let sshd = try SSHDFixture()
        let squatter = try TCPTestServer(behavior: .echo)
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try Self.writeConfig(sshd, lines: [
            "RemoteForward 127.0.0.1:\(squatter.port) 127.0.0.1:\(echo.port)",
            "LocalForward 127.0.0.1:\(localPort) 127.0.0.1:\(echo.port)",
        ])
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        try tunnel.waitForLine(containing: "connected to", timeout: 20)
        let warning = try tunnel.waitForLine(containing: "the server refused to listen", timeout: 20)
        #expect(warning.hasPrefix("expose: \(config):8: warning: RemoteForward 127.0.0.1:\(squatter.port) -> 127.0.0.1:\(echo.port): the server refused to listen: no reason given"), "\(warning)")
        #expect(warning.contains("asking again in"), "\(warning)")
        let payload = Array("local still works".utf8)
        #expect(try TCPTestClient.connect(port: localPort).exchange(payload) == payload)
    }
}
