import Foundation
import NIOCore
import NIOPosix
import Testing
import TunnelConfig
@testable import TunnelEngine
import TunnelTestSupport

/// The session's own close, driven directly so that two closes meet on the loop every time.
@Suite("Closing a session", .serialized)
struct SessionCloseTests {
    @Test("a second close while the first is disconnecting waits for it: the server still gets SSH_MSG_DISCONNECT")
    func secondCloseWaits() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let connection = try await loop.submit {
            SSHConnection(settings: settings(sshd), eventLoop: loop, counters: TunnelCounters(), logger: testLogger)
        }.get()
        _ = try await loop.flatSubmit { connection.connect() }.get()
        // An open channel, so the polite close must free it (a round trip) before it can send the disconnect.
        try await loop.flatSubmit { () -> EventLoopFuture<Void> in
            let opened = loop.makePromise(of: Void.self)
            let forward = connection.makeForward(label: "test")
            connection.open(forward, to: .tcp(host: "127.0.0.1", port: echo.port)) { result in
                opened.completeWith(result.mapError { $0 as Error })
            }
            return opened.futureResult
        }.get()
        // Both closes in one turn of the loop: the first starts the polite disconnect (which needs the server's
        // answers), the second arrives while it is under way. It used to tear the link down at once.
        let (first, second) = try await loop.submit { (connection.close(), connection.close()) }.get()
        try await first.get()
        try await second.get()
        try waitUntil(timeout: 5, "sshd to log the client's disconnect") { sshd.log.contains("Received disconnect from 127.0.0.1") }
        try await group.shutdownGracefully()
    }
}

/// A session with no forwarded connection open must still read what the server sends: keepalive requests
/// (`ClientAliveInterval`, common on cloud images), key re-exchanges.
@Suite("An idle session stays up", .serialized)
struct IdleSessionTests {
    @Test("with no client connected, the server's keepalives are answered and the session stays up")
    func keepalivesAnsweredWithNoChannel() async throws {
        var options = SSHDFixture.Options()
        options.extraConfig = ["ClientAliveInterval 1", "ClientAliveCountMax 2"]
        let sshd = try SSHDFixture(options: options)
        let echo = try TCPTestServer(behavior: .echo)
        try await withTunnel(sshd, forwards: [echo.port]) { _, ports in
            // sshd gives up on a client after 2 unanswered keepalives, 1 s apart. It has given up by 7 s when nobody answers (measured: within 6 s).
            let askedBy = Date().addingTimeInterval(7)
            try waitUntil(timeout: 10, "7 s to pass with the session idle") {
                Date() >= askedBy || sshd.log.contains("Timeout, client not responding")
            }
            #expect(!sshd.log.contains("Timeout, client not responding"), "sshd dropped the idle session")
            #expect(try TCPTestClient.connect(port: ports[0]).exchange(Array("still up".utf8)) == Array("still up".utf8))
        }
    }
}
