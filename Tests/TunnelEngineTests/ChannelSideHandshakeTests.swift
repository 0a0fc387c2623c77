import NIOCore
import NIOPosix
import Testing
import TunnelConfig
@testable import TunnelEngine

/// The pre-open phase of a remote dynamic forward's connection, fed bytes by hand: no channel, no socket.
@Suite("Channel-side SOCKS handshake (remote dynamic forwarding)")
struct ChannelSideHandshakeTests {
    let socks5Request: [UInt8] = [5, 1, 0] + [5, 1, 0, 3, 9] + Array("localhost".utf8) + [0x1F, 0x90]

    func bytes(_ buffer: ByteBuffer?) -> [UInt8] { buffer.map { Array($0.readableBytesView) } ?? [] }

    @Test("SOCKS5 in pieces: method choice, then the target; success after the connect, with the early payload")
    func socks5() {
        var handshake = ChannelSideHandshake(permit: .any)
        let first = handshake.feed(ByteBuffer(bytes: socks5Request[0..<4]))
        #expect(bytes(first.toChannel) == [5, 0])
        #expect(first.decision == .needMore)
        #expect(handshake.isReading)
        let second = handshake.feed(ByteBuffer(bytes: Array(socks5Request[4...]) + Array("GET".utf8)))
        #expect(second.toChannel == nil)
        #expect(second.decision == .connect(ProxyTarget(host: "localhost", port: 8080)))
        #expect(!handshake.isReading)
        let answer = handshake.connected()
        #expect(bytes(answer?.reply) == [5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(bytes(answer?.leftover) == Array("GET".utf8))
        #expect(handshake.connected() == nil, "answered once")
    }

    @Test("SOCKS4 and 4a: granted 0x5A, failed 0x5B")
    func socks4() {
        var handshake = ChannelSideHandshake(permit: .any)
        let outcome = handshake.feed(ByteBuffer(bytes: [4, 1, 0, 80, 0, 0, 0, 1, 0] + Array("web".utf8) + [0]))
        #expect(outcome.decision == .connect(ProxyTarget(host: "web", port: 80)))
        #expect(bytes(handshake.connectFailed(.refused)) == [0, 0x5B, 0, 0, 0, 0, 0, 0])

        var granted = ChannelSideHandshake(permit: .any)
        _ = granted.feed(ByteBuffer(bytes: [4, 1, 0, 80, 127, 0, 0, 1, 0]))
        #expect(bytes(granted.connected()?.reply) == [0, 0x5A, 0, 0, 0, 0, 0, 0])
    }

    @Test("local connect failures map to SOCKS5 codes: refused 5, unreachable 4, network 3, unknown name 4, timeout 6")
    func failureCodes() {
        let cases: [(LocalConnectFailure, UInt8)] = [
            (.refused, 5), (.hostUnreachable, 4), (.networkUnreachable, 3), (.unknownHost, 4), (.timedOut, 6), (.other, 1),
        ]
        for (failure, code) in cases {
            var handshake = ChannelSideHandshake(permit: .any)
            _ = handshake.feed(ByteBuffer(bytes: socks5Request))
            #expect(bytes(handshake.connectFailed(failure)) == [5, code, 0, 1, 0, 0, 0, 0, 0, 0], "\(failure)")
            if case .refused = handshake.state {} else { Issue.record("\(failure): not refused") }
        }
        #expect(LocalConnectFailure(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .refused)
        #expect(LocalConnectFailure(IOError(errnoCode: ENETUNREACH, reason: "connect")) == .networkUnreachable)
        #expect(LocalConnectFailure(ChannelError.connectTimeout(.seconds(10))) == .timedOut)
    }

    @Test("PermitRemoteOpen: a target not on the list is refused with 0x02 (SOCKS5) or 0x5B (SOCKS4), never connected")
    func permitRemoteOpen() {
        let permit = PermitRemoteOpen.only([.init(host: "127.0.0.1", port: 8080, written: "127.0.0.1:8080")])
        var allowed = ChannelSideHandshake(permit: permit)
        #expect(allowed.feed(ByteBuffer(bytes: [4, 1, 0x1F, 0x90, 127, 0, 0, 1, 0])).decision == .connect(ProxyTarget(host: "127.0.0.1", port: 8080)))

        var byName = ChannelSideHandshake(permit: permit)
        let refused = byName.feed(ByteBuffer(bytes: socks5Request))
        #expect(bytes(refused.toChannel) == [5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0])
        guard case .notPermitted(let reason) = refused.decision else { Issue.record("not refused: \(refused.decision)"); return }
        #expect(reason.contains("localhost:8080 is not allowed by PermitRemoteOpen 127.0.0.1:8080"))

        var socks4 = ChannelSideHandshake(permit: .none)
        let refused4 = socks4.feed(ByteBuffer(bytes: [4, 1, 0x1F, 0x90, 127, 0, 0, 1, 0]))
        #expect(bytes(refused4.toChannel) == [0, 0x5B, 0, 0, 0, 0, 0, 0])
        #expect(socks4.connected() == nil)
    }

    @Test("garbage is refused without an answer; bytes after a decision are refused too")
    func garbage() {
        var handshake = ChannelSideHandshake(permit: .any)
        let outcome = handshake.feed(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        #expect(outcome.toChannel == nil)
        guard case .refuse = outcome.decision else { Issue.record("\(outcome.decision)"); return }
        guard case .refuse = handshake.feed(ByteBuffer(bytes: [5])).decision else { Issue.record("fed after refusal"); return }
    }
}
