// A long link on one machine: this kernel has no netem, so a userspace TCP relay (a `TCPTestServer` behaviour)
// holds every byte for a fixed time in each direction. It reads eagerly and queues without limit, so the link has
// all the bandwidth loopback has and only the delay: what limits a stream through it is the SSH channel's window.
// Its sockets keep the kernel's autotuned buffers (a fixed SO_RCVBUF/SO_SNDBUF is capped at rmem_max/wmem_max, 4 MiB
// on the CI machine against tcp_rmem's 32 MiB, and turns autotuning off).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum DelayRelay {
    /// Relays the accepted `client` to 127.0.0.1:`targetPort` with `oneWayDelay` seconds added each way, until
    /// both directions have ended (EOF passed on, or a peer gone). The caller closes `client`.
    static func relay(_ client: Int32, to targetPort: Int, oneWayDelay: Double) {
        guard let server = try? connectBlocking(port: targetPort) else { return }
        defer { close(server) }
        let delay = UInt64(oneWayDelay * 1e9)
        let pumps = DispatchGroup()
        for (from, to) in [(client, server), (server, client)] {
            let line = DelayLine(delayNanoseconds: delay)
            let directions: [@Sendable () -> Void] = [{ line.read(from: from) }, { line.write(to: to) }]
            for pump in directions {
                pumps.enter()
                let thread = Thread {
                    pump()
                    pumps.leave()
                }
                thread.name = "DelayRelay \(from)->\(to)"
                thread.start()
            }
        }
        pumps.wait()
    }

    private static func connectBlocking(port: Int) throws -> Int32 {
        let address = try SocketAddress(host: "127.0.0.1", port: port)
        let fd = try makeStreamSocket(family: address.family)
        guard address.withSockAddr({ connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw TestSupportError.errno("DelayRelay: connect to 127.0.0.1:\(port)")
        }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
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
                queue.append((Self.now() + delayNanoseconds, Array(buffer[0..<n])))
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
            let now = Self.now()
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

    private static func now() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
