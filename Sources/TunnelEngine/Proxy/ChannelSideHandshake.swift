#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
import TunnelConfig

/// The pre-open phase of a remote dynamic forward's connection (`RemoteForward [bind:]port` with no target; OpenSSH's
/// `rdynamic` channels): the server forwarded a connection to us, and the first bytes on that SSH channel are a SOCKS
/// request from a client on the server's side. We are its SOCKS server: the request is read from the channel, the
/// target is checked against `PermitRemoteOpen`, connected to from this machine (names resolved here, as `ssh -R`
/// does), and only then is the client answered: success once the connection is made, or the failure it met.
///
/// The mirror of the `DynamicForward` proxy (client socket first, channel opened after); the SOCKS parsing is the
/// same `SOCKSServerHandshake`. No I/O here, so every decision has a unit test; `ForwardedConnection` does the reading
/// and writing.
struct ChannelSideHandshake {
    enum State {
        /// Reading the request; `input` holds what is not parsed yet (bounded: every SOCKS message has a bounded size).
        case reading(SOCKSServerHandshake, input: ByteBuffer)
        /// The target is known and being connected to; `leftover` is what the client sent after its request (its first
        /// payload), for the target once the connection is made.
        case connecting(SOCKSServerHandshake, target: ProxyTarget, leftover: ByteBuffer)
        /// Answered with a refusal: the answer goes out, then the channel closes.
        case refused
        /// Answered with success: the pair forwards bytes from now on.
        case finished
    }

    /// What the bytes fed so far lead to.
    enum Decision: Equatable {
        /// The request is incomplete: read more from the channel.
        case needMore
        /// Connect to this target (then `connected` or `connectFailed`).
        case connect(ProxyTarget)
        /// Send what `toChannel` holds (the refusal, when the protocol has one), then close the channel.
        case refuse(reason: String)
        /// The same for a well-formed request to a target `PermitRemoteOpen` does not allow (worth a log line of its
        /// own: it is the configuration at work, not a broken client).
        case notPermitted(reason: String)
    }

    struct Outcome: Equatable {
        /// Bytes for the SOCKS client, in order: method choice, and the refusal if any.
        var toChannel: ByteBuffer?
        var decision: Decision
    }

    private(set) var state: State
    let permit: PermitRemoteOpen

    init(permit: PermitRemoteOpen) {
        // No credentials: the server's side has authenticated the SSH session; OpenSSH asks for none either.
        self.state = .reading(SOCKSServerHandshake(credentials: nil), input: ByteBuffer())
        self.permit = permit
    }

    /// Whether the request is still being read (what the deadline applies to).
    var isReading: Bool { if case .reading = state { return true } else { return false } }

    /// Bytes read from the channel.
    mutating func feed(_ bytes: ByteBuffer) -> Outcome {
        guard case .reading(var socks, var input) = state else {
            return Outcome(toChannel: nil, decision: .refuse(reason: "bytes after the handshake was decided"))
        }
        var bytes = bytes
        input.writeBuffer(&bytes)
        var out: ByteBuffer?
        func send(_ reply: ByteBuffer?) {
            guard var reply else { return }
            if out == nil { out = reply } else { out!.writeBuffer(&reply) }
        }
        while true {
            switch socks.next(&input) {
            case .needMore:
                state = .reading(socks, input: input)
                return Outcome(toChannel: out, decision: .needMore)
            case .reply(let reply):
                send(reply)
            case .refuse(let reply, let reason):
                state = .refused
                send(reply)
                return Outcome(toChannel: out, decision: .refuse(reason: reason))
            case .connect(let target):
                guard permit.permits(host: target.host, port: target.port) else {
                    state = .refused
                    send(socks.version == .v5 ? socks.reply5(.notAllowed) : socks.reply4(granted: false))
                    return Outcome(toChannel: out, decision: .notPermitted(reason: "\(target) is not allowed by PermitRemoteOpen \(permit)"))
                }
                state = .connecting(socks, target: target, leftover: input)
                return Outcome(toChannel: out, decision: .connect(target))
            }
        }
    }

    /// The connection to the target is made: the success answer for the client, and its first payload for the target.
    mutating func connected() -> (reply: ByteBuffer, leftover: ByteBuffer?)? {
        guard case .connecting(let socks, _, let leftover) = state else { return nil }
        state = .finished
        let reply = socks.version == .v5 ? socks.reply5(.succeeded) : socks.reply4(granted: true)
        return (reply, leftover.readableBytes > 0 ? leftover : nil)
    }

    /// The connection to the target failed with `error`: the answer that says why, as near as the protocol allows.
    mutating func connectFailed(_ error: LocalConnectFailure) -> ByteBuffer? {
        guard case .connecting(let socks, _, _) = state else { return nil }
        state = .refused
        guard socks.version == .v5 else { return socks.reply4(granted: false) }
        switch error {
        case .refused: return socks.reply5(.connectionRefused)
        case .hostUnreachable, .unknownHost: return socks.reply5(.hostUnreachable)
        case .networkUnreachable: return socks.reply5(.networkUnreachable)
        case .timedOut: return socks.reply5(.ttlExpired)
        case .other: return socks.reply5(.generalFailure)
        }
    }
}

/// Why a connection from this machine to a target failed, in the terms SOCKS replies can tell apart.
enum LocalConnectFailure: Equatable {
    case refused, hostUnreachable, networkUnreachable, unknownHost, timedOut, other

    /// From what NIO's `ClientBootstrap` failed with.
    init(_ error: Error) {
        if let connectError = error as? NIOConnectionError {
            if let first = connectError.connectionErrors.first {
                self.init(first.error)
            } else if connectError.dnsAAAAError != nil || connectError.dnsAError != nil {
                self = .unknownHost
            } else {
                self = .other
            }
            return
        }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError {
            self = .timedOut
            return
        }
        guard let ioError = error as? IOError else {
            self = .other
            return
        }
        switch ioError.errnoCode {
        case ECONNREFUSED: self = .refused
        case EHOSTUNREACH: self = .hostUnreachable
        case ENETUNREACH: self = .networkUnreachable
        case ETIMEDOUT: self = .timedOut
        default: self = .other
        }
    }
}
