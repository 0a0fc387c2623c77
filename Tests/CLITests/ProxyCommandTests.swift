// ProxyCommand is not run by tunnel yet: a host with one must be refused, never connected to directly instead
// (that would bypass the proxy the user set up). `ProxyCommand none` stays a direct connection.
import Foundation
import Testing
import TunnelTestSupport

@Suite("ProxyCommand in tunnel check and tunnel up (no servers)")
struct ProxyCommandCheckTests {
    @Test("a ProxyCommand host: tunnel check says it is not brought up; tunnel up and check --connect refuse it and connect nowhere")
    func proxyCommandIsRefused() throws {
        let directory = NSTemporaryDirectory() + "tunnel-proxycommand-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/pc.conf"
        let closed = try freeTCPPortOutsideEphemeralRange(), local = try freeTCPPortOutsideEphemeralRange()
        try "Host db\n  HostName 127.0.0.1\n  Port \(closed)\n  User proxied\n  ProxyCommand nc %h %p\n  LocalForward \(local) 127.0.0.1:9\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let check = try ProcessRunner(try CheckTool.tunnel(), ["check", path]).run(timeout: 20)
        #expect(check.stdoutText.contains("db: proxied@127.0.0.1:\(closed)\n  not brought up: ProxyCommand \"nc %h %p\" is not supported yet"),
                "\(check.stdoutText)")
        #expect(!check.stderrText.contains("ignored"), "ProxyCommand is acted on, not ignored: \(check.stderrText)")
        let up = try ProcessRunner(try CheckTool.tunnel(), ["up", path]).run(timeout: 20)
        #expect(up.exit == .exited(1), "\(up.stderrText)")
        #expect(up.stderrText.contains("db: error: ") && up.stderrText.contains("ProxyCommand \"nc %h %p\""), "\(up.stderrText)")
        #expect(!up.stderrText.contains("cannot connect"), "nothing is connected to, directly or not: \(up.stderrText)")
        let connect = try ProcessRunner(try CheckTool.tunnel(), ["check", "--connect", path]).run(timeout: 20)
        #expect(connect.exit != .exited(0), "\(connect.stdoutText)\(connect.stderrText)")
        let both = connect.stdoutText + connect.stderrText
        #expect(both.contains("ProxyCommand \"nc %h %p\""), "\(both)")
        #expect(!both.contains("refused") && !both.contains("cannot connect"), "nothing is connected to: \(both)")
    }
}
