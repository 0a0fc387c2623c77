import Logging
import NIOCore
import SSH2
import TunnelConfig

/// One forwarded TCP connection: a local NIO channel paired with an SSH channel.
///
/// Flow control (design section 4): bytes from the local client are read only when the previous batch has been taken
/// by the SSH channel and the session's output to the server is not congested; bytes from the SSH channel are read
/// only while the local socket is writable. Half-close travels both ways: local EOF becomes SSH EOF, SSH EOF becomes
/// a shutdown of the local socket's output once every byte before it has been written.
/// Lives on its connection's event loop; never touched from anywhere else.
final class ForwardedConnection {
    enum Phase { case waitingForSession, opening, open, closed }

    let id: Int
    let spec: ForwardSpec
    let local: Channel
    let clientAddress: String
    private(set) var phase: Phase = .waitingForSession
    private(set) var channel: SSHChannel?
    private let counters: TunnelCounters
    private let logger: Logger

    /// Bytes read from the local client that the SSH channel has not accepted yet.
    private var toServer: ByteBuffer?
    private var localEOF = false
    private var eofSent = false
    private var remoteEOF = false
    private var localOutputClosed = false
    private var localClosed = false
    private var readRequested = false
    /// Completes when every byte written to the local socket so far is out; shutdown waits for it.
    private var lastLocalWrite: EventLoopFuture<Void>?

    init(id: Int, spec: ForwardSpec, local: Channel, counters: TunnelCounters, logger: Logger) {
        self.id = id
        self.spec = spec
        self.local = local
        self.clientAddress = local.remoteAddress.map(describe) ?? "?"
        self.counters = counters
        var logger = logger
        logger[metadataKey: "client"] = "\(clientAddress)"
        self.logger = logger
    }

    var isClosed: Bool { phase == .closed }

    /// Who connected, as sent to the server in the channel-open request (OpenSSH does the same).
    var originHost: String { local.remoteAddress?.ipAddress ?? "127.0.0.1" }
    var originPort: Int { local.remoteAddress?.port ?? 0 }

    // MARK: - Events from the session

    func openStarted() { if phase == .waitingForSession { phase = .opening } }

    /// The server opened the channel. Returns false if the local side is already gone (the caller frees the channel).
    func channelOpened(_ channel: SSHChannel) -> Bool {
        guard phase != .closed else { return false }
        self.channel = channel
        phase = .open
        return true
    }

    func openFailed(_ error: SSH2Error) {
        counters.recordOpenFailure()
        logger.warning("\(spec.listenText) -> \(spec.targetText): the server could not open the connection: \(error.message.isEmpty ? error.description : error.message)")
        close(.abort)
    }

    /// Move whatever can move now. Throws only for errors that doom the whole session; a problem with this one
    /// connection closes just this connection.
    func step(outboundCongested: Bool) throws(SSH2Error) {
        guard phase == .open, let channel else { return }
        do {
            try moveToServer(channel, outboundCongested: outboundCongested)
            if localClosed {
                // The client is gone; finish once what it sent has been handed over and EOF is out.
                if toServer == nil && eofSent { close(.abort) }
                return
            }
            try moveToLocal(channel)
        } catch {
            if error.isSessionFatal { throw error }
            logger.info("\(spec.listenText) -> \(spec.targetText): closed: \(error)")
            close(.abort)
            return
        }
        // From here on the client is still connected (a closed client returned above).
        if remoteEOF && !eofSent {
            // libssh2 reads EOF and CLOSE alike as end of stream. After CLOSE the server discards what we send and
            // never widens the window again, so an upload would stall for good: finish as OpenSSH does
            // (deliver what we have to the client, then close).
            let closedByServer: Bool
            do { closedByServer = try channel.remoteClosed() } catch {
                if error.isSessionFatal { throw error }
                closedByServer = true
            }
            if closedByServer {
                logger.debug("the server closed the channel; \(toServer?.readableBytes ?? 0) bytes from the client were not delivered")
                close(.drainThenClose)
                return
            }
        }
        if !localEOF, toServer == nil, !readRequested, !outboundCongested {
            readRequested = true
            local.read()
        }
        if remoteEOF && eofSent { close(.drainThenClose) }
    }

    private func moveToServer(_ channel: SSHChannel, outboundCongested: Bool) throws(SSH2Error) {
        if var pending = toServer {
            while pending.readableBytes > 0 && !outboundCongested {
                guard let written = try write(pending, to: channel), written > 0 else { break }
                pending.moveReaderIndex(forwardBy: written)
                counters.addSent(written)
            }
            toServer = pending.readableBytes > 0 ? pending : nil
        }
        if toServer == nil && localEOF && !eofSent {
            if case .done = try channel.sendEOF() { eofSent = true }
        }
    }

    private func moveToLocal(_ channel: SSHChannel) throws(SSH2Error) {
        var wrote = false
        reading: while !remoteEOF && !localClosed && local.isWritable {
            var buffer = local.allocator.buffer(capacity: Self.readChunk)
            switch try read(from: channel, into: &buffer) {
            case .bytes(let count):
                counters.addReceived(count)
                lastLocalWrite = local.write(buffer)
                wrote = true
            case .wouldBlock:
                break reading
            case .endOfStream:
                remoteEOF = true
            }
        }
        if wrote { local.flush() }
        // Shut the client's read side only after our own EOF went out, so NIO's escalation to a full close (both
        // halves shut) cannot drop bytes the client sent that are still on their way to the server.
        if remoteEOF && !localOutputClosed && !localClosed && (!localEOF || eofSent) {
            localOutputClosed = true
            let local = self.local
            let shutdown: @Sendable (Result<Void, Error>) -> Void = { _ in local.close(mode: .output, promise: nil) }
            if let lastLocalWrite { lastLocalWrite.whenComplete(shutdown) } else { shutdown(.success(())) }
        }
    }

    /// Size of one read from the SSH channel: a little more than libssh2's 32 KiB packet.
    static let readChunk = 64 * 1024

    // ByteBuffer's closure APIs are `rethrows`, which erases typed throws; these keep the error type.
    private func read(from channel: SSHChannel, into buffer: inout ByteBuffer) throws(SSH2Error) -> SSHChannel.ReadResult {
        var outcome = SSHChannel.ReadResult.wouldBlock
        var failure: SSH2Error?
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readChunk) { space in
            do throws(SSH2Error) { outcome = try channel.read(into: space) } catch { failure = error }
            if case .bytes(let count) = outcome { return count }
            return 0
        }
        if let failure { throw failure }
        return outcome
    }

    private func write(_ buffer: ByteBuffer, to channel: SSHChannel) throws(SSH2Error) -> Int? {
        var written: Int?
        var failure: SSH2Error?
        buffer.withUnsafeReadableBytes { bytes in
            do throws(SSH2Error) { written = try channel.write(bytes) } catch { failure = error }
        }
        if let failure { throw failure }
        return written
    }

    // MARK: - Events from the local socket

    func localRead(_ buffer: inout ByteBuffer) {
        if toServer == nil {
            toServer = buffer
        } else {
            toServer!.writeBuffer(&buffer)
        }
    }

    func localReadComplete() { readRequested = false }

    func localInputClosed() { localEOF = true }

    /// The client's socket is closed. That is also how NIO reports a client's EOF once we have shut its read side
    /// (both halves closed means a full close), so the bytes it sent before must still reach the server: as
    /// OpenSSH does, deliver them, send EOF, then close. Nothing more can be delivered to the client.
    func localChannelClosed() {
        localClosed = true
        localEOF = true
        let owesServer = toServer != nil || (phase == .open && !eofSent)
        if phase == .closed || !owesServer { close(.abort) }
    }

    // MARK: - Teardown

    enum CloseMode {
        /// Both sides are finished: let the client read what is already written to it, then close. Bounded by
        /// `drainLimit`, so a client that never reads cannot keep the socket (and its buffers) forever.
        case drainThenClose
        /// Close now (session lost, stop, error): pending writes are dropped and a blocked client is released.
        case abort
    }

    static let drainLimit = TimeAmount.seconds(30)

    /// The SSH channel is handed back to the connection to be freed (a libssh2 step that may need a round trip).
    private(set) var channelToRetire: SSHChannel?

    func close(_ mode: CloseMode) {
        guard phase != .closed else {
            // Already closing gently; an abort (stop, session lost) must still take effect now.
            if mode == .abort { local.close(promise: nil) }
            return
        }
        phase = .closed
        channelToRetire = channel
        channel = nil
        toServer = nil
        counters.connectionEnded()
        let local = self.local
        switch (mode, lastLocalWrite) {
        case (.drainThenClose, let lastWrite?):
            let limit = local.eventLoop.scheduleTask(in: Self.drainLimit) { local.close(promise: nil) }
            lastWrite.whenComplete { _ in
                limit.cancel()
                local.close(promise: nil)
            }
        default:
            local.close(promise: nil)
        }
    }

    func takeChannelToRetire() -> SSHChannel? {
        defer { channelToRetire = nil }
        return channelToRetire
    }
}

extension SSH2Error {
    /// Errors that mean the session itself is broken: the transport is gone or its crypto or protocol state is
    /// corrupt. Anything else (a refused, closed or misused channel) ends only the one forwarded connection.
    var isSessionFatal: Bool {
        switch kind {
        case .socketDisconnected, .bannerExchange, .keyExchange, .protocolError, .timeout: return true
        case .other(let code): return SSH2Error.transportCodes.contains(code)
        default: return false
        }
    }
}

func describe(_ address: SocketAddress) -> String {
    switch address {
    case .v4: return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
    case .v6: return "[\(address.ipAddress ?? "?")]:\(address.port ?? 0)"
    case .unixDomainSocket: return address.pathname ?? "unix"
    }
}
