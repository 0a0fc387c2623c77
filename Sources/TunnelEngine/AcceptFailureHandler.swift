// What a forward's listener does when accept(2) fails for want of descriptors or memory (EMFILE, ENFILE,
// ENOBUFS, ENOMEM). NIO keeps such a listener open, but its server channel stays registered for "readable"
// (a read is still pending: only a successful accept clears it), and the waiting connection keeps the socket
// readable, so accept is retried at once, forever: measured 31,000 failing accept4 calls in 4 s, the event loop
// that also carries every forwarded connection busy. NIO's `AcceptBackoffHandler` does not help here: it delays
// the *next* `read()`, but the pending one goes on. Turning `autoRead` off does stop it (NIO unregisters the
// socket from epoll), and turning it on again after a pause retries.
import Logging
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Pauses a listener's accepting for a moment after a resource failure, and logs the episode: the first
/// failure as a warning (clients are not being accepted, and why), the next successful accept with how many
/// attempts failed in between. Clients meanwhile wait in the kernel's backlog (their connect has completed
/// there) and are served once descriptors are free again; beyond the backlog the kernel refuses them.
final class AcceptFailureHandler: ChannelInboundHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    /// How long accepting pauses after a resource failure.
    static let pause = TimeAmount.milliseconds(250)

    private enum State {
        case accepting
        /// Accepts have been failing since the logged warning; `failures` counts the attempts, `paused` says
        /// whether a resume is scheduled.
        case failing(failures: Int, paused: Bool)
    }

    private let listenText: String
    private let logger: Logger
    private var state = State.accepting

    init(listenText: String, logger: Logger) {
        self.listenText = listenText
        self.logger = logger
    }

    /// The errors that mean "not now" rather than "this listener is broken" (NIO keeps the listener open for
    /// exactly these, and for ECONNABORTED: a client that left before it was accepted, which needs no pause).
    static func isResourceShortage(_ errnoCode: CInt) -> Bool {
        switch errnoCode {
        case EMFILE, ENFILE, ENOBUFS, ENOMEM: return true
        default: return false
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .failing(let failures, _) = state {
            logger.warning("\(listenText): accepting clients again (\(failures) accept attempt\(failures == 1 ? "" : "s") failed)")
            state = .accepting
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let ioError = error as? IOError, Self.isResourceShortage(ioError.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        switch state {
        case .accepting:
            let reason = String(cString: strerror(ioError.errnoCode))
            logger.warning("\(listenText): cannot accept a client: \(reason) (errno \(ioError.errnoCode)); new clients wait until some close (raise the limit with ulimit -n)")
            state = .failing(failures: 1, paused: false)
        case .failing(let failures, let paused):
            state = .failing(failures: failures + 1, paused: paused)
        }
        pause(context)
    }

    private func pause(_ context: ChannelHandlerContext) {
        guard case .failing(let failures, false) = state, let options = context.channel.syncOptions else { return }
        do {
            try options.setOption(.autoRead, value: false)
        } catch {
            return  // the listener is closing
        }
        state = .failing(failures: failures, paused: true)
        let channel = context.channel
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) {
            if case .failing(let failures, true) = self.state { self.state = .failing(failures: failures, paused: false) }
            // Accepting again: NIO registers for readable and retries the accept.
            try? channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }
}
