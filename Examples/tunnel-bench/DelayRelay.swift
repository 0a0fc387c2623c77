// A long link on one machine: this kernel has no netem, so a userspace TCP relay between the SSH client and sshd
// holds every byte for a fixed time in each direction. It reads eagerly and queues without limit, so the link has
// all the bandwidth loopback has and only the delay: what limits a stream through it is the SSH channel's window
// (its sockets keep the kernel's autotuned buffers: a fixed SO_RCVBUF/SO_SNDBUF is capped at rmem_max/wmem_max, 4 MiB
// on this machine against tcp_rmem's 32 MiB, and turns autotuning off).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Listens on 127.0.0.1:`port`; each connection is relayed to 127.0.0.1:`targetPort` with `oneWayDelay` seconds
/// added each way (so a round trip gains twice that). `stop()` stops accepting; relayed connections end with
/// their peers.
final class DelayRelay: Sendable {
    let port: Int
    let oneWayDelay: Double
    private let listener: Listener

    init(targetPort: Int, oneWayDelay: Double) throws {
        self.oneWayDelay = oneWayDelay
        listener = try Listener()
        port = listener.port
        let listener = self.listener
        let delayNanoseconds = UInt64(oneWayDelay * 1e9)
        startThread("relay accept") {
            while let client = listener.accept() {
                guard let server = try? BlockingSocket.connect(port: targetPort, timeout: 30) else {
                    close(client)
                    continue
                }
                // Blocking without timeouts from here: each pump ends with its peer's EOF or error.
                for fd in [client, server.fd] { DelayRelay.prepare(fd) }
                let pair = RelayedPair(client: client, server: server.fd)
                for (from, to) in [(client, server.fd), (server.fd, client)] {
                    let line = DelayLine(delayNanoseconds: delayNanoseconds)
                    startThread("relay in \(from)") { line.read(from: from); pair.readerDone() }
                    startThread("relay out \(to)") { line.write(to: to); pair.writerDone() }
                }
            }
        }
    }

    func stop() { listener.shutDown() }

    /// No timeouts: each pump ends with its peer.
    private static func prepare(_ fd: Int32) {
        var none = timeval()
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// Both sockets of one relayed connection, closed once all four pumps have finished.
private final class RelayedPair: @unchecked Sendable {
    private let lock = NSLock()
    private var running = 4
    private let client: Int32
    private let server: Int32

    init(client: Int32, server: Int32) {
        self.client = client
        self.server = server
    }

    /// A reader saw EOF or an error: its writer passes EOF on once the queue is out.
    func readerDone() { finishOne() }

    /// A writer finished (EOF passed on, or its peer is gone).
    func writerDone() { finishOne() }

    private func finishOne() {
        let last = lock.withLock { () -> Bool in
            running -= 1
            return running == 0
        }
        if last {
            close(client)
            close(server)
        }
    }
}

/// One direction: bytes stamped with the time they may leave, in arrival order.
private final class DelayLine: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [(due: UInt64, bytes: [UInt8])] = []
    private var head = 0
    private var ended = false
    /// The writer's peer is gone: the reader drops what it reads (and ends with its own peer).
    private var broken = false
    private let delayNanoseconds: UInt64

    init(delayNanoseconds: UInt64) {
        self.delayNanoseconds = delayNanoseconds
    }

    func read(from fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            condition.lock()
            if n <= 0 {
                ended = true
            } else if !broken {
                queue.append((monotonicNanoseconds() + delayNanoseconds, Array(buffer[0..<n])))
            }
            condition.signal()
            condition.unlock()
            if n <= 0 { return }
        }
    }

    func write(to fd: Int32) {
        while true {
            condition.lock()
            while head == queue.count && !ended { condition.wait() }
            if head == queue.count {
                condition.unlock()
                shutdown(fd, Int32(SHUT_WR))
                return
            }
            let (due, bytes) = queue[head]
            queue[head].bytes = []
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            let now = monotonicNanoseconds()
            if due > now {
                var wait = timespec(tv_sec: Int((due - now) / 1_000_000_000), tv_nsec: Int((due - now) % 1_000_000_000))
                var left = timespec()
                while nanosleep(&wait, &left) != 0 && errno == EINTR { wait = left }
            }
            var offset = 0
            while offset < bytes.count {
                let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                if sent < 0 && errno == EINTR { continue }
                if sent <= 0 {
                    condition.lock()
                    broken = true
                    queue = []
                    head = 0
                    condition.unlock()
                    // The other side is gone: stop both ways.
                    shutdown(fd, Int32(SHUT_RDWR))
                    return
                }
                offset += sent
            }
        }
    }
}
