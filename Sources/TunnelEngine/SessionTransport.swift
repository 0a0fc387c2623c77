import NIOCore
import SSH2

/// The in-memory byte queues between the session's link and libssh2's send/receive callbacks.
///
/// The link appends what the server sent to `inbound`; libssh2 drains it through `receive(into:)`. libssh2's output
/// lands in `outbound`, which the connection hands to the link once per pump. Used on the connection's event loop,
/// or, while the connection lends the session to the thread pool (authentication), only there.
final class SessionTransport: SSHByteTransport {
    private var inbound: ByteBuffer
    private var outbound: ByteBuffer?
    private let allocator: ByteBufferAllocator
    /// The server closed its side: once `inbound` is drained, libssh2 sees end of stream.
    var serverClosed = false

    init(allocator: ByteBufferAllocator) {
        self.allocator = allocator
        self.inbound = allocator.buffer(capacity: 0)
    }

    /// Bytes from the server.
    func append(fromServer buffer: inout ByteBuffer) {
        if inbound.readableBytes == 0 {
            inbound = buffer  // no copy in the common case
        } else {
            if inbound.readerIndex > 256 * 1024 { inbound.discardReadBytes() }
            inbound.writeBuffer(&buffer)
        }
    }

    var pendingOutbound: Int { outbound?.readableBytes ?? 0 }

    /// Hand over everything libssh2 has queued for the server. The next send starts a new buffer (the link owns
    /// this one until it is written), so a pump that sends nothing allocates nothing.
    func takeOutbound() -> ByteBuffer? {
        defer { outbound = nil }
        return outbound
    }

    // MARK: SSHByteTransport

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let available = inbound.readableBytes
        if available == 0 { return serverClosed ? 0 : nil }
        let count = min(available, buffer.count)
        inbound.withUnsafeReadableBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: count)
        }
        inbound.moveReaderIndex(forwardBy: count)
        return count
    }

    func send(_ bytes: UnsafeRawBufferPointer) {
        if outbound == nil { outbound = allocator.buffer(capacity: max(16 * 1024, bytes.count)) }
        outbound!.writeBytes(bytes)
    }
}
