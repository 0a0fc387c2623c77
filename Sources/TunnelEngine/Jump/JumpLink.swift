#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// [ProxyJump] A session's link through a jump host: a `direct-tcpip` channel of the jump host's session to the
/// next host, in this process, on the same event loop (no `ssh` binary, no extra process).
///
/// The channel is a forwarded connection of the jump host's `SSHConnection` like any other, and its "client" is
/// one end of a Unix socket pair whose other end is the next session's `TCPLink`. Why a socket pair rather than
/// a direct call from one session into the other: `ForwardedConnection` already does everything a link needs for
/// a NIO channel (it writes only what the channel's window takes and reads the channel only while the other side
/// keeps up, carries EOF both ways, and cuts the pair when the jump host's session is lost), and the socket
/// pair's buffers stay bounded by its write-buffer water marks; the price is one kernel copy per direction. When
/// the channel ends (the next host closed, the jump host's session died) the pair closes and the next session
/// sees its link closed; `HopChain` names the jump host that caused it.
enum JumpLink {
    /// Why a link could not be opened: the jump host's refusal (or its session's end), in its own words.
    struct OpenFailure: Error {
        var message: String
    }

    /// Open a channel from `carrier` (up) to `host:port` and return the link for the next session, whose events
    /// go to `events`. Fails with `OpenFailure` when the jump host cannot open the channel, its session ends first,
    /// or no answer comes within `timeout`.
    static func open(through carrier: SSHConnection, to host: String, port: Int, timeout: TimeAmount,
                     events: SessionLinkEvents) -> EventLoopFuture<TCPLink> {
        let loop = carrier.eventLoop
        loop.assertInEventLoop()
        var fds: [Int32] = [-1, -1]
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
            let reason = String(cString: strerror(errno))
            return loop.makeFailedFuture(OpenFailure(message: "cannot make a socket pair: \(reason)"))
        }
        let carrierHandler = NIOLoopBound(ForwardClientRelay(), eventLoop: loop)
        let linkHandler = NIOLoopBound(LinkHandler(events: events), eventLoop: loop)
        // The jump host's side is read only when its channel's window has room, as a forwarded client is.
        let carrierSide = ClientBootstrap(group: loop)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.writeBufferWaterMark, value: .init(low: 128 * 1024, high: 512 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(carrierHandler.value) }
            }
            .withConnectedSocket(fds[0])
        let sessionSide = ClientBootstrap(group: loop)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(linkHandler.value) }
            }
            .withConnectedSocket(fds[1])
        let pair = carrierSide.and(sessionSide)
        pair.whenFailure { _ in
            // Whichever side registered is closed with its channel; the other descriptor may still be ours.
            carrierSide.whenSuccess { $0.close(promise: nil) }
            sessionSide.whenSuccess { $0.close(promise: nil) }
            carrierSide.whenFailure { _ in close(fds[0]) }
            sessionSide.whenFailure { _ in close(fds[1]) }
        }
        let bound = NIOLoopBound(carrier, eventLoop: loop)
        return pair.flatMap { carrierChannel, sessionChannel in
            let carrier = bound.value
            let result = loop.makePromise(of: TCPLink.self)
            let pending = NIOLoopBoundBox(true, eventLoop: loop)
            @Sendable func finish(_ outcome: Result<TCPLink, OpenFailure>) {
                guard pending.value else { return }
                pending.value = false
                switch outcome {
                case .success(let link): result.succeed(link)
                case .failure(let failure):
                    carrierChannel.close(promise: nil)
                    sessionChannel.close(promise: nil)
                    result.fail(failure)
                }
            }
            let forward = carrier.makeForward(label: "ProxyJump -> \(host):\(port)")
            forward.attach(client: carrierChannel)
            carrierHandler.value.attach(forward, carrier)
            // Held by the open's callback and the deadline only: once both are done it goes, so the callback left on
            // the jump host's long-lived `closeFuture` (which holds it weakly) keeps nothing alive, however many
            // links are opened through a bastion that stays up.
            let finishing = NIOLoopBoundBox<(@Sendable (Result<TCPLink, OpenFailure>) -> Void)?>(finish, eventLoop: loop)
            carrier.open(forward, to: .tcp(host: host, port: port)) { outcome in
                switch outcome {
                case .success: finishing.value?(.success(TCPLink(channel: sessionChannel)))
                case .failure(let failure): finishing.value?(.failure(OpenFailure(message: failure.message)))
                }
            }
            // `open` says nothing if the pair closed meanwhile; these make sure the caller hears something.
            carrier.closeFuture.whenSuccess { [weak finishing] _ in finishing?.value?(.failure(OpenFailure(message: "its session ended"))) }
            let deadline = loop.scheduleTask(in: timeout) {
                finishing.value?(.failure(OpenFailure(message: "no answer to the channel open within \(timeout.nanoseconds / 1_000_000_000) s")))
            }
            result.futureResult.whenComplete { _ in deadline.cancel() }
            return result.futureResult
        }
    }
}
