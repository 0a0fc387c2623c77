// Raw blocking sockets for the bench's own clients and servers. Blocking calls are cheap (no event loop of our
// own to measure) and every one is bounded: SO_RCVTIMEO/SO_SNDTIMEO turn a stalled peer into an error that says
// what was being waited for. Everything here is on 127.0.0.1.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the benchmark, with a message meant for the person running it.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    static func errno(_ what: String, _ code: Int32 = Glibc.errno) -> BenchError {
        BenchError("\(what): \(String(cString: strerror(code))) (errno \(code))")
    }
}

/// The only address the bench ever uses.
let loopback = "127.0.0.1"

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(loopback)
    address.sin_port = UInt16(port).bigEndian
    return address
}

private func setTimeout(_ fd: Int32, _ option: Int32, seconds: Double) {
    var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
    _ = setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
}

private func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// A connected TCP socket whose every send and receive gives up after `timeout` seconds.
/// Not thread-safe; one owner closes it once.
struct BlockingSocket {
    let fd: Int32
    let port: Int

    /// Connects to 127.0.0.1:`port`. The connect itself is bounded by the same timeout (SO_SNDTIMEO applies to it).
    static func connect(port: Int, timeout: Double = 10) throws -> BlockingSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError.errno("socket") }
        setTimeout(fd, SO_SNDTIMEO, seconds: timeout)
        setTimeout(fd, SO_RCVTIMEO, seconds: timeout)
        setNoDelay(fd)
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            Glibc.close(fd)
            throw BenchError.errno("connect to \(loopback):\(port)", code)
        }
        return BlockingSocket(fd: fd, port: port)
    }

    func sendAll(_ buffer: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let n = send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw BenchError("send to \(loopback):\(port): peer took \(offset) of \(buffer.count) bytes before the timeout")
            }
            throw BenchError.errno("send to \(loopback):\(port)")
        }
    }

    /// Fills `buffer` completely; throws on EOF, error or timeout, saying how much had arrived.
    func receiveExactly(_ buffer: UnsafeMutableRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let n = recv(fd, buffer.baseAddress! + offset, buffer.count - offset, 0)
            if n > 0 { offset += n; continue }
            if n == 0 { throw BenchError("receive from \(loopback):\(port): EOF after \(offset) of \(buffer.count) bytes") }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                throw BenchError("receive from \(loopback):\(port): \(offset) of \(buffer.count) bytes arrived before the timeout")
            }
            throw BenchError.errno("receive from \(loopback):\(port)")
        }
    }

    /// Up to `buffer.count` bytes; 0 means EOF. Throws on error or timeout.
    func receiveSome(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw BenchError("receive from \(loopback):\(port): nothing arrived before the timeout") }
            throw BenchError.errno("receive from \(loopback):\(port)")
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
    func close() { Glibc.close(fd) }
}

/// One request of `RoundTrip.size` bytes out, the same number back, checked against what an echo server returns.
struct RoundTrip {
    static let size = 64
    private var request = [UInt8](repeating: 0, count: RoundTrip.size)
    private var reply = [UInt8](repeating: 0, count: RoundTrip.size)
    private var counter: UInt8 = 0

    /// One round trip on `socket`; throws if the reply is short, late or not the request echoed.
    mutating func run(on socket: BlockingSocket) throws {
        counter &+= 1
        request[0] = counter
        try request.withUnsafeBytes { try socket.sendAll($0) }
        try reply.withUnsafeMutableBytes { try socket.receiveExactly($0) }
        guard reply[0] == counter else {
            throw BenchError("reply from \(loopback):\(socket.port) does not echo request \(counter)")
        }
    }
}

/// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
struct Listener {
    let fd: Int32
    let port: Int

    init(backlog: Int32 = 1024) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError.errno("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, backlog) == 0 else { throw BenchError.errno("listen on \(loopback)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// The next connection (close-on-exec, TCP_NODELAY), or nil once the listener is shut down.
    func accept() -> Int32? {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                setNoDelay(client)
                return client
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            return nil
        }
    }

    /// Makes a blocked `accept` return nil.
    func shutDown() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}

/// Starts `body` on a new thread with a small stack: the servers run one thread per connection, up to a few thousand.
func startThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread(block: body)
    thread.name = name
    thread.stackSize = 256 << 10
    thread.start()
}

/// Monotonic nanoseconds, for latencies.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
