import Testing
import TunnelConfig
@testable import TunnelEngine

/// What a RemoteForward line becomes in a tcpip-forward request, and which lines the engine serves: no server.
@Suite("RemoteForward: requests and status")
struct RemoteForwardSpecTests {
    func remote(_ line: String) throws -> [RemoteForwardSpec] {
        try TunnelConfigFile.parse(text: "Host h\n  \(line)\n", file: "t.conf").resolve(host: "h").remoteForwards
    }

    @Test("the bind address is sent as OpenSSH's client sends it")
    func requestHost() throws {
        #expect(try remote("RemoteForward 9000 localhost:3000").first?.requestHost == "localhost")
        #expect(try remote("RemoteForward localhost:9000 localhost:3000").first?.requestHost == "localhost")
        #expect(try remote("RemoteForward *:9000 localhost:3000").first?.requestHost == "")
        #expect(try remote("RemoteForward :9000 localhost:3000").first?.requestHost == "")
        #expect(try remote("RemoteForward 127.0.0.1:9000 localhost:3000").first?.requestHost == "127.0.0.1")
        #expect(try remote("RemoteForward [::1]:9000 localhost:3000").first?.requestHost == "::1")
    }

    @Test("TCP to TCP and remote SOCKS are served; Unix sockets are not (yet, or with libssh2 never)")
    func served() throws {
        #expect(try remote("RemoteForward 9000 localhost:3000").first?.isServedByEngine == true)
        #expect(try remote("RemoteForward 0 [::1]:3000").first?.isServedByEngine == true)
        #expect(try remote("RemoteForward 9000").first?.isServedByEngine == true)
        #expect(try remote("RemoteForward 9000").first?.isRemoteDynamic == true)
        #expect(try remote("RemoteForward /r.sock localhost:3000").first?.isServedByEngine == false)
        #expect(try remote("RemoteForward 9000 /l.sock").first?.isServedByEngine == false)
    }

    @Test("settings keep only the forwards the engine serves, and ExitOnForwardFailure")
    func settings() throws {
        let host = try TunnelConfigFile.parse(text: """
            Host h
              RemoteForward 9000 localhost:3000
              RemoteForward 9001
              RemoteForward /r.sock /l.sock
              RemoteForward 0 db:5432
              ExitOnForwardFailure yes
            """, file: "t.conf").resolve(host: "h")
        let settings = ConnectionSettings(host)
        #expect(settings.remoteForwards.map(\.listenPort) == [9000, 9001, 0])
        #expect(settings.exitOnForwardFailure)
    }

    @Test("status shows the port the server listens on once it does")
    func statusDescription() throws {
        let spec = try #require(try remote("RemoteForward 0 db:5432").first)
        #expect(RemoteForwardStatus(forward: spec, state: .pending).description == "remote localhost:0 -> db:5432")
        #expect(RemoteForwardStatus(forward: spec, state: .listening(port: 41234)).description == "remote localhost:41234 -> db:5432")
        #expect(spec.targetText == "db:5432")
        #expect(spec.serverSideText(port: 41234) == "localhost:41234")
    }
}
