import NIOCore
import SSH2

/// The in-memory byte queues between NIO's TCP channel to the server and libssh2's send/receive callbacks.
///
/// NIO appends what the server sent to `inbound`; libssh2 drains it through `receive(into:)`. libssh2's output lands
/// in `outbound`, which the connection hands to NIO once per pump. Everything happens on the connection's event loop.
final class SessionTransport: SSHByteTransport {
    private(set) var inbound: ByteBuffer
    private(set) var outbound: ByteBuffer
    private let allocator: ByteBufferAllocator
    /// The server closed its side: once `inbound` is drained, libssh2 sees end of stream.
    var serverClosed = false

    init(allocator: ByteBufferAllocator) {
        self.allocator = allocator
        self.inbound = allocator.buffer(capacity: 0)
        self.outbound = allocator.buffer(capacity: 64 * 1024)
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

    var pendingInbound: Int { inbound.readableBytes }
    var pendingOutbound: Int { outbound.readableBytes }

    /// Hand over everything libssh2 has queued for the server.
    func takeOutbound() -> ByteBuffer? {
        guard outbound.readableBytes > 0 else { return nil }
        let out = outbound
        outbound = allocator.buffer(capacity: max(64 * 1024, out.readableBytes))
        return out
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
        outbound.writeBytes(bytes)
    }
}
