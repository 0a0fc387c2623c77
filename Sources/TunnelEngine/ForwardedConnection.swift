#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import SSH2
import TunnelConfig

/// One forwarded connection: a client socket paired with an SSH channel. The same shape serves every forward:
/// a local forward (client first, fixed target), a proxied connection (client first, target learned from the
/// client, reply after the open), and a remote forward (channel first, client connection made afterwards).
/// Either end can be attached first; bytes move once both are there. A remote dynamic forward's connection (channel
/// first, the target learned from the channel's first bytes) has a pre-open phase, `ChannelSideHandshake`, in which
/// the channel is read and answered before any local socket exists.
///
/// Flow control (design section 4): bytes from the client are read only when the previous batch has been taken by
/// the SSH channel and the session's output to the server is not congested; bytes from the SSH channel are read only
/// while the client socket is writable. The half-close and close rules live in `ForwardFlow`.
/// Lives on its session's event loop; never touched from anywhere else.
final class ForwardedConnection {
    enum Phase {
        /// One end or both are not attached yet.
        case connecting
        /// Both ends are there; `slot` is the channel's place in the session's `SSHChannelSet`.
        case open(SSHChannel, slot: Int)
        case closed
    }

    /// What the step is waiting for, so the session steps it again when that happens (and not before).
    struct Waits: OptionSet {
        let rawValue: UInt8
        /// The server's window for this channel is full.
        static let serverWindow = Waits(rawValue: 1)
        /// The session's output to the server is congested.
        static let sessionOutput = Waits(rawValue: 2)
        /// A receive-window grant is half-sent (keys are being re-exchanged): finish it before reading again.
        static let grant = Waits(rawValue: 4)
    }

    let id: Int
    /// "127.0.0.1:8080 -> db:5432", for log lines.
    var label: String
    private(set) var phase = Phase.connecting
    private(set) var client: Channel?
    private var flow = ForwardFlow()
    private let counters: TunnelCounters
    /// Which of the tunnel's forwards this connection came through, for its per-forward counts.
    private let forwardIndex: Int?
    private(set) var logger: Logger

    /// Bytes read from the client that the SSH channel has not accepted yet.
    private var toServer: ByteBuffer?
    private var readRequested = false
    /// Completes when every byte written to the client so far is out; shutdown and drain wait for it.
    private var lastClientWrite: EventLoopFuture<Void>?
    /// In the session's queue of connections to step (so it is queued once however many events arrive).
    var isScheduled = false
    private(set) var waits: Waits = []
    /// Bytes the last step moved from the server to the client, and from the client to the server.
    private(set) var stepReceived = 0
    private(set) var stepSent = 0
    /// Packets from the server the last step is known to have taken: data reads, and EOF and close (counted as
    /// two when the end of the stream was seen).
    private(set) var stepPackets = 0
    /// Remote dynamic forwarding: the SOCKS handshake on the channel, until the pair forwards (nil for other forwards).
    private var channelHandshake: ChannelSideHandshake?
    /// The target the handshake asked for, for the session to connect to (`takeTargetToConnect`).
    private var targetToConnect: ProxyTarget?
    /// How far the server may run ahead of the client (set when the channel is attached).
    private var receiveWindow: ReceiveWindow?
    private let windowLimits: ReceiveWindowLimits
    /// A grant libssh2 holds half-sent: it must be finished, with this amount, before the channel is read again.
    private var pendingGrant: Int?
    /// The last read may have left libssh2's own window adjust half-sent: no grant of ours until a read finishes it.
    private var libssh2AdjustMayBePending = false

    init(id: Int, label: String, counters: TunnelCounters, forwardIndex: Int?, logger: Logger,
         windowLimits: ReceiveWindowLimits = .default) {
        self.id = id
        self.label = label
        self.counters = counters
        self.forwardIndex = forwardIndex
        self.logger = logger
        self.windowLimits = windowLimits
    }

    deinit {
        // `close` gives the window back; this covers a connection dropped without one.
        receiveWindow?.release()
    }

    /// The window the server may currently run up to (nil before the channel is attached), for tests.
    var receiveWindowTarget: Int? { receiveWindow?.target }

    var isClosed: Bool { if case .closed = phase { return true } else { return false } }

    var channel: SSHChannel? { if case .open(let channel, _) = phase { return channel } else { return nil } }

    /// The channel's slot in the session's `SSHChannelSet` while open.
    var slot: Int? { if case .open(_, let slot) = phase { return slot } else { return nil } }

    // MARK: - Attaching the ends

    /// The client's socket. Its handler must feed events in through `clientRead`, `clientReadComplete`,
    /// `clientSentEOF` and `clientClosed`.
    func attach(client: Channel) {
        self.client = client
        logger[metadataKey: "client"] = "\(client.remoteAddress.map(describe) ?? "?")"
        // Remote dynamic: the target is connected; the SOCKS client is told so before anything else goes up, and what
        // it sent after its request is the target's first input.
        if channelHandshake != nil, let (reply, leftover) = channelHandshake!.connected() {
            channelHandshake = nil
            queueToServer(reply)
            if let leftover { writeToClient(leftover) }
        }
    }

    // MARK: - Remote dynamic forwarding: the channel-side SOCKS handshake

    /// This connection's channel came from a remote dynamic forward: read a SOCKS request from it before anything else.
    func startChannelHandshake(permit: PermitRemoteOpen) {
        channelHandshake = ChannelSideHandshake(permit: permit)
    }

    /// Whether the SOCKS request is still being read from the channel (the handshake deadline applies).
    var isReadingChannelHandshake: Bool { channelHandshake?.isReading ?? false }

    /// Whether a SOCKS client on the channel waits for the answer to its request (remote dynamic forwarding).
    var isAnsweringChannelHandshake: Bool { channelHandshake != nil }

    /// The target the channel's SOCKS request named and `PermitRemoteOpen` allows, once: connect it, then attach it.
    func takeTargetToConnect() -> ProxyTarget? {
        defer { targetToConnect = nil }
        return targetToConnect
    }

    /// The connection to the target failed: answer the SOCKS client with why; the channel closes once that is out.
    func targetConnectFailed(_ error: Error, target: String) {
        guard !isClosed, let reply = channelHandshake?.connectFailed(LocalConnectFailure(error)) else { return }
        // The target was the client's choice, not the tunnel's configuration: info, not a warning.
        logger.info("\(label): cannot connect to \(target): \(plainReason(error)); the SOCKS client is told so and this channel closes")
        queueToServer(reply)
    }

    /// One step of the pre-open phase: send what the handshake answered, read the request, act on it.
    private func stepChannelHandshake(_ channel: SSHChannel, outboundCongested: Bool, scratch: UnsafeMutableRawBufferPointer) throws(SSH2Error) {
        try moveToServer(channel, outboundCongested: outboundCongested)
        guard let handshake = channelHandshake else { return }
        switch handshake.state {
        case .reading:
            // A small read: what follows the request is held until the target is connected, so keep it small.
            let chunk = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(scratch.count, Self.handshakeChunk)])
            while channelHandshake?.isReading == true {
                switch try channel.read(into: chunk) {
                case .bytes(let count):
                    counters.addReceived(count, forward: forwardIndex)
                    stepReceived += count
                    stepPackets += 1
                    let outcome = channelHandshake!.feed(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: chunk[0..<count])))
                    if let reply = outcome.toChannel { queueToServer(reply) }
                    switch outcome.decision {
                    case .needMore:
                        break
                    case .connect(let target):
                        label += " -> \(target)"
                        targetToConnect = target
                    case .refuse(let reason):
                        // Garbage is logged quietly, as the local proxy does.
                        logger.debug("\(label): refused: \(reason)")
                    case .notPermitted(let reason):
                        logger.info("\(label): refused: \(reason)")
                    }
                    try moveToServer(channel, outboundCongested: outboundCongested)
                case .wouldBlock:
                    return
                case .endOfStream:
                    stepPackets += 2
                    logger.debug("\(label): the SOCKS client left mid-handshake")
                    return close(.abort)
                }
            }
            if case .refused = channelHandshake?.state, toServer == nil { close(.drainThenClose) }
        case .connecting, .finished:
            return
        case .refused:
            // The answer is out (or was none): close. Waiting for the window otherwise (moveToServer noted it).
            if toServer == nil { close(.drainThenClose) }
        }
    }

    /// How much one read takes from the channel while the request is read.
    static let handshakeChunk = 4096

    /// Our own bytes for the server (a SOCKS answer), ahead of anything from the client.
    private func queueToServer(_ buffer: ByteBuffer) {
        var buffer = buffer
        if toServer == nil { toServer = buffer } else { toServer!.writeBuffer(&buffer) }
    }

    /// The opened SSH channel, placed in `slot`; `openedWith`: the receive window it was opened with (libssh2's
    /// default for channels the server opened). Returns false if the pair is already closed (the caller frees it).
    func attach(channel: SSHChannel, slot: Int, openedWith window: Int = SSHChannel.defaultReceiveWindow) -> Bool {
        guard case .connecting = phase else { return false }
        phase = .open(channel, slot: slot)
        receiveWindow = ReceiveWindow(base: window, cap: windowLimits.cap, budget: windowLimits.budget, proof: windowLimits.proof)
        return true
    }

    /// Who connected, as sent to the server in a channel-open request (OpenSSH does the same).
    var originHost: String { client?.remoteAddress?.ipAddress ?? "127.0.0.1" }
    var originPort: Int { client?.remoteAddress?.port ?? 0 }

    // MARK: - Moving bytes

    /// Move whatever can move now. `scratch` is the session's reusable read buffer: a read that finds nothing
    /// allocates nothing. Throws only for errors that doom the whole session; a problem with this one connection
    /// closes just this connection.
    func step(outboundCongested: Bool, scratch: UnsafeMutableRawBufferPointer) throws(SSH2Error) {
        waits = []
        stepReceived = 0
        stepSent = 0
        stepPackets = 0
        guard case .open(let channel, _) = phase else { return }
        if channelHandshake != nil, client == nil {
            do throws(SSH2Error) {
                try stepChannelHandshake(channel, outboundCongested: outboundCongested, scratch: scratch)
            } catch {
                if error.isSessionFatal { throw error }
                logger.info("\(label): closed: \(error)")
                close(.abort)
            }
            return
        }
        guard let client else { return }
        do throws(SSH2Error) {
            try moveToServer(channel, outboundCongested: outboundCongested)
            if flow.mayReadServer { try moveToClient(channel, client: client, scratch: scratch) }
            if flow.shouldShutClientOutput { shutClientOutput(client) }
            var serverClosed = false
            if flow.mustCheckServerClose {
                do { serverClosed = try channel.remoteClosed() } catch {
                    if error.isSessionFatal { throw error }
                    serverClosed = true
                }
                if serverClosed {
                    logger.debug("the server closed the channel; \(toServer?.readableBytes ?? 0) bytes from the client were not delivered")
                }
            }
            if let mode = flow.ending(pendingUpstream: toServer != nil, serverClosedChannel: serverClosed) {
                return close(mode)
            }
        } catch {
            if error.isSessionFatal { throw error }
            logger.info("\(label): closed: \(error)")
            return close(.abort)
        }
        if flow.mayReadClient(pendingUpstream: toServer != nil), !readRequested {
            if outboundCongested {
                waits.insert(.sessionOutput)
            } else {
                readRequested = true
                client.read()
            }
        }
    }

    private func moveToServer(_ channel: SSHChannel, outboundCongested: Bool) throws(SSH2Error) {
        if var pending = toServer {
            if outboundCongested { waits.insert(.sessionOutput) }
            while pending.readableBytes > 0 && !outboundCongested {
                guard let written = try write(pending, to: channel), written > 0 else {
                    waits.insert(.serverWindow)
                    break
                }
                pending.moveReaderIndex(forwardBy: written)
                counters.addSent(written, forward: forwardIndex)
                stepSent += written
            }
            toServer = pending.readableBytes > 0 ? pending : nil
        }
        if flow.shouldSendEOF(pendingUpstream: toServer != nil) {
            // Would block only while keys are re-exchanged; retried with the connections waiting for the window.
            if case .done = try channel.sendEOF() { flow.eofSent() } else { waits.insert(.serverWindow) }
        }
    }

    private func moveToClient(_ channel: SSHChannel, client: Channel, scratch: UnsafeMutableRawBufferPointer) throws(SSH2Error) {
        if let grant = pendingGrant {
            guard case .done = try channel.grantReceiveWindow(grant) else {
                waits.insert(.grant)
                return
            }
            pendingGrant = nil
        }
        let libssh2AdjustsBelow = receiveWindow?.libssh2AdjustsBelow(readSize: scratch.count) ?? 0
        var wrote = false
        var delivered = 0
        var drained = false
        reading: while flow.mayReadServer {
            if !client.isWritable {
                // Written but not flushed yet counts against NIO's watermark: hand it to the socket, and go on if
                // the socket took it. Only a socket that is full too means the client is behind.
                guard wrote else { break reading }
                client.flush()
                wrote = false
                if !client.isWritable { break reading }
            }
            let windowBefore = channel.receiveWindow
            switch try channel.read(into: scratch) {
            case .bytes(let count):
                libssh2AdjustMayBePending = false
                counters.addReceived(count, forward: forwardIndex)
                stepReceived += count
                stepPackets += 1
                delivered += count
                // Copy out only what arrived, into a buffer of that size.
                let buffer = client.allocator.buffer(bytes: UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
                lastClientWrite = client.write(buffer)
                wrote = true
                // Grant as the burst is read, before libssh2's own top-up (see `ReceiveWindow.grant`); a grant
                // libssh2 holds half-sent must be finished before the channel is read again.
                try grantIfDue(channel)
                if pendingGrant != nil { break reading }
            case .wouldBlock:
                drained = true
                // libssh2 1.10 counts the window down as data is read, not as it arrives, so a read that found
                // nothing leaves it unchanged unless the read widened it. Below libssh2's own mark it tried to: if
                // the window did not grow, that adjust is still half-sent (keys are being re-exchanged).
                if windowBefore < libssh2AdjustsBelow && channel.receiveWindow <= windowBefore { libssh2AdjustMayBePending = true }
                break reading
            case .endOfStream:
                libssh2AdjustMayBePending = false
                flow.serverSentEOF()
                stepPackets += 2
            }
        }
        if wrote { client.flush() }
        try adjustReceiveWindow(channel, delivered: delivered, drained: drained, clientBehind: flow.mayReadServer && !client.isWritable)
    }

    /// Grow or shrink the window by how the client kept up with this step's reads, give back to the budget what the
    /// reads drained below what the connection claimed, and grant what the server may send next (see
    /// `ReceiveWindow`). Granted also while the client is behind: libssh2 counts what is unread against the window,
    /// so the window (already halved for it) still bounds what this connection holds.
    private func adjustReceiveWindow(_ channel: SSHChannel, delivered: Int, drained: Bool, clientBehind: Bool) throws(SSH2Error) {
        guard receiveWindow != nil else { return }
        if clientBehind {
            receiveWindow!.clientFellBehind(delivered: delivered, at: .now())
        } else if !drained {
            // Cut short by a half-sent grant (or the end of the stream): no verdict, but the bytes count.
            receiveWindow!.clientTook(delivered: delivered)
        } else if let change = receiveWindow!.clientKeptUp(delivered: delivered, at: .now()) {
            switch change {
            case .tried(let from, let to, let rateBefore):
                logger.debug("\(label): receive window \(from >> 10) KiB -> \(to >> 10) KiB (moved \(megabytes(rateBefore)) MB/s)")
            case .wentBack(let tried, let to, let rate, let rateBefore):
                logger.debug("\(label): receive window back to \(to >> 10) KiB: \(tried >> 10) KiB moved \(megabytes(rate)) MB/s, \(to >> 10) KiB \(megabytes(rateBefore))")
            }
        }
        // libssh2's window still counts what arrived and was not read: after a halving, the budget gets bytes back
        // only as reads take the window down towards the new target.
        receiveWindow!.windowIs(left: channel.receiveWindow)
        try grantIfDue(channel)
    }

    /// Grants what `ReceiveWindow` says is due; one that would block is finished first thing next step.
    private func grantIfDue(_ channel: SSHChannel) throws(SSH2Error) {
        guard pendingGrant == nil, !libssh2AdjustMayBePending,
              let grant = receiveWindow?.grant(windowLeft: channel.receiveWindow) else { return }
        if case .wouldBlock = try channel.grantReceiveWindow(grant) {
            pendingGrant = grant
            waits.insert(.grant)
        }
    }

    /// MB/s with one decimal.
    private func megabytes(_ bytesPerSecond: Double) -> String {
        "\((bytesPerSecond / 1e5).rounded() / 10)"
    }

    private func shutClientOutput(_ client: Channel) {
        flow.clientOutputShut()
        let shutdown: @Sendable (Result<Void, Error>) -> Void = { _ in client.close(mode: .output, promise: nil) }
        if let lastClientWrite { lastClientWrite.whenComplete(shutdown) } else { shutdown(.success(())) }
    }

    // ByteBuffer's closure APIs are `rethrows`, which erases typed throws; this keeps the error type.
    private func write(_ buffer: ByteBuffer, to channel: SSHChannel) throws(SSH2Error) -> Int? {
        var written: Int?
        var failure: SSH2Error?
        buffer.withUnsafeReadableBytes { bytes in
            do throws(SSH2Error) { written = try channel.write(bytes) } catch { failure = error }
        }
        if let failure { throw failure }
        return written
    }

    /// Bytes of our own for the client, ahead of anything from the server (a proxy's answer to its client): written
    /// in order with the server's bytes, and waited for by a draining close like them.
    func writeToClient(_ buffer: ByteBuffer) {
        guard let client else { return }
        lastClientWrite = client.writeAndFlush(buffer)
    }

    // MARK: - Events from the client socket

    func clientRead(_ buffer: inout ByteBuffer) {
        if toServer == nil {
            toServer = buffer
        } else {
            toServer!.writeBuffer(&buffer)
        }
    }

    func clientReadComplete() { readRequested = false }

    func clientSentEOF() { flow.clientSentEOF() }

    /// The client's socket is closed: deliver what it sent, send EOF, then close (see `ForwardFlow.clientClosed`).
    func clientClosed() {
        let channelOpen: Bool
        if case .open = phase { channelOpen = true } else { channelOpen = false }
        flow.clientClosed()
        if isClosed || !flow.owesServer(pendingUpstream: toServer != nil, channelOpen: channelOpen) { close(.abort) }
    }

    // MARK: - Teardown

    static let drainLimit = TimeAmount.seconds(30)

    /// The SSH channel and its slot, handed back to the session to be freed (a libssh2 step that may need a round
    /// trip) when the pair closes.
    private(set) var channelToRetire: (channel: SSHChannel, slot: Int)?

    func close(_ mode: ForwardFlow.CloseMode) {
        guard !isClosed else {
            // Already closing gently; an abort (stop, session lost) must still take effect now.
            if mode == .abort { client?.close(promise: nil) }
            return
        }
        if case .open(let channel, let slot) = phase { channelToRetire = (channel, slot) }
        phase = .closed
        receiveWindow?.release()
        toServer = nil
        counters.connectionEnded(forward: forwardIndex)
        guard let client else { return }
        switch (mode, lastClientWrite) {
        case (.drainThenClose, let lastWrite?):
            let limit = client.eventLoop.scheduleTask(in: Self.drainLimit) { client.close(promise: nil) }
            lastWrite.whenComplete { _ in
                limit.cancel()
                client.close(promise: nil)
            }
        default:
            client.close(promise: nil)
        }
    }

    /// The session died under this connection: close the client with a reset (SO_LINGER 0), so a transfer that
    /// was cut looks cut to the client, never like a clean end of stream.
    func cut() {
        if let client, let options = client as? SocketOptionProvider {
            let client = client
            options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in client.close(promise: nil) }
        }
        close(.abort)
    }

    func takeChannelToRetire() -> (channel: SSHChannel, slot: Int)? {
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
