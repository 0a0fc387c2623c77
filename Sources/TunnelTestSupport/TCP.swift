// Plain TCP test peers: a threaded server with canned behaviours and a blocking client with timeouts.
import Foundation
#if canImport(Glibc)
import Glibc
import Digests
#endif

/// A TCP server on a loopback address with one thread per connection. Port 0 picks a free port.
public final class TCPTestServer: @unchecked Sendable {
    public enum Behavior: Sendable {
        /// Echo everything until EOF, finish writing, then shutdown(SHUT_WR) and close.
        case echo
        /// Read everything until EOF, then send "bytes=<n> sha256=<hex>\n" and close.
        case replyAfterEOF
        /// Send `bytes` bytes of `TestData.pseudoRandom(count:seed: TCPTestServer.sourceSeed)`, then close.
        case source(bytes: Int)
        /// Read and discard until EOF, then send "bytes=<n>\n" and close.
        case sink
        /// Minimal HTTP/1.0 and 1.1 responder: read the request head, answer 200 with `body`, Connection: close.
        case http(body: String)
        /// Reads one HTTP request (head, and a Content-Length body) and answers 200 with that request as its body:
        /// what a proxy sent on, to be checked.
        case httpReflect
        /// Say nothing for `delay` seconds, then send `message` unasked and close: a server push to a connection
        /// that has been idle (a notification, a timeout's goodbye).
        case pushAfter(delay: Double, message: String)
        /// A long link: relay each connection to 127.0.0.1:`targetPort` with `oneWayDelay` seconds added each way
        /// (a round trip gains twice that), with all of loopback's bandwidth (see `DelayRelay`).
        case delayRelay(targetPort: Int, oneWayDelay: Double)
    }

    /// The seed of the bytes a `.source` server sends.
    public static let sourceSeed: UInt64 = 0x5EED

    public let behavior: Behavior
    public let address: String
    public let port: Int

    private let listenFD: Int32
    private let wakeup: (read: Int32, write: Int32)
    private struct State {
        var accepted = 0
        var active: Set<Int32> = []
        var handlers = 0
        var stopped = false
        var acceptLoopDone = false
    }
    private let state = Locked(State())

    public var connectionsAccepted: Int { state.withLock { $0.accepted } }
    /// Connections whose handler is still running.
    public var activeConnections: Int { state.withLock { $0.handlers } }

    public convenience init(behavior: Behavior, address: String = "127.0.0.1", port: Int = 0) throws {
        try self.init(behavior: behavior, address: address, sockaddr: try SocketAddress(host: address, port: port),
                      name: hostPort(address, port))
    }

    /// The same server on a Unix-domain socket at `path` (as a service behind sshd listens, e.g. docker.sock).
    /// `address` is then the path and `port` 0.
    public convenience init(behavior: Behavior, unixSocketPath path: String) throws {
        try self.init(behavior: behavior, address: path, sockaddr: try SocketAddress(unixPath: path), name: path)
    }

    private init(behavior: Behavior, address: String, sockaddr: SocketAddress, name: String) throws {
        self.behavior = behavior
        self.address = address
        let fd = try makeStreamSocket(family: sockaddr.family)
        if sockaddr.family != AF_UNIX { setReuseAddress(fd) }
        guard sockaddr.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            let e = TestSupportError.errno("TCPTestServer: bind \(name)")
            close(fd)
            throw e
        }
        guard listen(fd, 512) == 0 else {
            let e = TestSupportError.errno("TCPTestServer: listen")
            close(fd)
            throw e
        }
        setNonBlocking(fd)
        listenFD = fd
        self.port = sockaddr.family == AF_UNIX ? 0 : try SocketAddress.local(of: fd).port
        do {
            wakeup = try makePipe(flags: O_CLOEXEC | O_NONBLOCK)
        } catch {
            close(fd)
            throw error
        }

        let state = self.state
        let (listenFD, wakeFD, behavior) = (fd, wakeup.read, behavior)
        let thread = Thread {
            Self.acceptLoop(listenFD: listenFD, wakeFD: wakeFD, behavior: behavior, state: state)
        }
        thread.name = "TCPTestServer \(self.port)"
        thread.start()
    }

    deinit { stop() }

    /// Stops accepting, shuts down open connections, waits (up to 5 s) for the handler threads. Idempotent.
    public func stop() {
        let first = state.withLock { s -> Bool in
            if s.stopped { return false }
            s.stopped = true
            for fd in s.active { shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        var byte: UInt8 = 1
        _ = write(wakeup.write, &byte, 1)
        _ = state.wait(until: Date().addingTimeInterval(5)) { $0.acceptLoopDone && $0.handlers == 0 }
        close(listenFD)
        close(wakeup.read)
        close(wakeup.write)
    }

    private static func acceptLoop(listenFD: Int32, wakeFD: Int32, behavior: Behavior, state: Locked<State>) {
        defer { state.withLock { $0.acceptLoopDone = true } }
        while true {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 || fds[1].revents != 0 { return }
            let conn = acceptCloexec(listenFD)
            if conn < 0 { continue }   // EAGAIN, ECONNABORTED: poll again
            let registered = state.withLock { s -> Bool in
                if s.stopped { return false }
                s.accepted += 1
                s.handlers += 1
                s.active.insert(conn)
                return true
            }
            if !registered {
                close(conn)
                return
            }
            var one: Int32 = 1
            _ = setsockopt(conn, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let handler = Thread {
                serve(conn, behavior)
                state.withLock { s in
                    s.active.remove(conn)
                    s.handlers -= 1
                    close(conn)
                }
            }
            handler.name = "TCPTestServer conn \(conn)"
            handler.start()
        }
    }

    // MARK: behaviours (blocking I/O; stop() unblocks them with shutdown)

    private static func serve(_ fd: Int32, _ behavior: Behavior) {
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        func readSome() -> Int {
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                return n
            }
        }
        switch behavior {
        case .echo:
            while true {
                let n = readSome()
                if n <= 0 { break }
                if !sendAll(fd, buffer, count: n) { return }
            }
            finish(fd)
        case .replyAfterEOF:
            var hash = SHA256()
            var total = 0
            while true {
                let n = readSome()
                if n < 0 { return }
                if n == 0 { break }
                total += n
                buffer.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            let reply = Array("bytes=\(total) sha256=\(hash.finalizeHex())\n".utf8)
            if sendAll(fd, reply, count: reply.count) { finish(fd) }
        case .source(let count):
            var stream = PseudoRandomStream(seed: sourceSeed)
            var left = count
            while left > 0 {
                let n = min(left, buffer.count)
                buffer.withUnsafeMutableBytes { stream.fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
                if !sendAll(fd, buffer, count: n) { return }
                left -= n
            }
            finish(fd)
        case .delayRelay(let targetPort, let oneWayDelay):
            DelayRelay.relay(fd, to: targetPort, oneWayDelay: oneWayDelay)
        case .pushAfter(let delay, let message):
            Thread.sleep(forTimeInterval: delay)
            let bytes = Array(message.utf8)
            if sendAll(fd, bytes, count: bytes.count) { finish(fd) }
        case .sink:
            var total = 0
            while true {
                let n = readSome()
                if n < 0 { return }
                if n == 0 { break }
                total += n
            }
            let reply = Array("bytes=\(total)\n".utf8)
            if sendAll(fd, reply, count: reply.count) { finish(fd) }
        case .httpReflect:
            var request: [UInt8] = []
            var bodyStart: Int?
            while bodyStart == nil {
                let n = readSome()
                if n <= 0 { return }
                request.append(contentsOf: buffer[0..<n])
                if request.count > 64 * 1024 { return }
                bodyStart = request.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound
            }
            let headText = String(decoding: request[..<bodyStart!], as: UTF8.self).lowercased()
            let length = headText.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            while request.count - bodyStart! < length {
                let n = readSome()
                if n <= 0 { return }
                request.append(contentsOf: buffer[0..<n])
            }
            let response = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(request.count)\r\nConnection: close\r\n\r\n".utf8) + request
            if sendAll(fd, response, count: response.count) { finish(fd) }
        case .http(let body):
            var head: [UInt8] = []
            let end: [UInt8] = Array("\r\n\r\n".utf8)
            while true {
                let n = readSome()
                if n <= 0 { return }
                head.append(contentsOf: buffer[0..<n])
                if head.count > 64 * 1024 { return }
                if let range = head.firstRange(of: end) ?? head.firstRange(of: Array("\n\n".utf8)) {
                    _ = range
                    break
                }
            }
            let requestLine = String(decoding: head.prefix(while: { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }), as: UTF8.self)
            let version = requestLine.hasSuffix("HTTP/1.0") ? "HTTP/1.0" : "HTTP/1.1"
            let bodyBytes = Array(body.utf8)
            let response = Array(("\(version) 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: \(bodyBytes.count)\r\nConnection: close\r\n\r\n").utf8) + bodyBytes
            if sendAll(fd, response, count: response.count) { finish(fd) }
        }
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8], count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    /// Half-close, then wait (bounded) for the peer's EOF so close() does not turn unread input into a reset.
    private static func finish(_ fd: Int32) {
        shutdown(fd, Int32(SHUT_WR))
        var scratch = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(5)
        while (try? pollFD(fd, events: Int16(POLLIN), until: deadline)) == true {
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) { return }
        }
    }
}

public enum TCPTestClient {
    /// Connects with a timeout; throws a clear error ("connect to 127.0.0.1:1234: Connection refused").
    public static func connect(host: String = "127.0.0.1", port: Int, timeout: Double = 10) throws -> TCPTestConnection {
        try connect(to: try SocketAddress(host: host, port: port), name: hostPort(host, port), timeout: timeout)
    }

    /// Connects to a Unix-domain socket.
    public static func connect(unixSocketPath path: String, timeout: Double = 10) throws -> TCPTestConnection {
        try connect(to: try SocketAddress(unixPath: path), name: path, timeout: timeout)
    }

    private static func connect(to address: SocketAddress, name: String, timeout: Double) throws -> TCPTestConnection {
        let fd = try makeStreamSocket(family: address.family)
        setNonBlocking(fd)
        do {
            let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
            if rc != 0 {
                guard errno == EINPROGRESS else { throw TestSupportError.errno("connect to \(name)") }
                guard try pollFD(fd, events: Int16(POLLOUT), until: Date().addingTimeInterval(timeout)) else {
                    throw TestSupportError("connect to \(name): no answer within \(formatSeconds(timeout)) s")
                }
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err != 0 { throw TestSupportError.errno("connect to \(name)", err) }
            }
        } catch {
            close(fd)
            throw error
        }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return TCPTestConnection(fd: fd, peer: name)
    }

    /// Whether something accepts TCP connections on host:port right now.
    public static func isAccepting(host: String = "127.0.0.1", port: Int, timeout: Double = 1) -> Bool {
        guard let c = try? connect(host: host, port: port, timeout: timeout) else { return false }
        c.close()
        return true
    }
}

/// A connected TCP socket with blocking, time-bounded operations (non-blocking socket + poll underneath).
/// One thread may send while another receives; `close()` only once both are done. Closes itself in deinit.
public final class TCPTestConnection: @unchecked Sendable {
    private let fd: Int32
    private let closed = Locked(false)
    public let peer: String

    init(fd: Int32, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    deinit { close() }

    /// Sends all of `bytes`; throws if the peer does not take them within `timeout` seconds.
    public func send(_ bytes: [UInt8], timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n >= 0 {
                offset += n
                continue
            }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else {
                throw TestSupportError.errno("send to \(peer) (after \(offset) of \(bytes.count) bytes)")
            }
            guard try pollFD(fd, events: Int16(POLLOUT), until: deadline) else {
                throw TestSupportError("send to \(peer): peer took only \(offset) of \(bytes.count) bytes within \(formatSeconds(timeout)) s")
            }
        }
    }

    /// Sends EOF (shutdown(SHUT_WR)); receiving still works.
    public func shutdownWrite() {
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Up to `maxBytes` bytes, as soon as any are there; empty means EOF. Throws after `timeout` with nothing.
    public func receive(upTo maxBytes: Int = 65536, timeout: Double = 10) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: max(1, maxBytes))
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return Array(buffer[0..<n]) }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else { throw TestSupportError.errno("receive from \(peer)") }
            guard try pollFD(fd, events: Int16(POLLIN), until: deadline) else {
                throw TestSupportError("receive from \(peer): nothing arrived within \(formatSeconds(timeout)) s")
            }
        }
    }

    /// Everything until EOF; throws if EOF has not come within `timeout` seconds (saying how much arrived).
    public func receiveAll(timeout: Double = 30) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var out: [UInt8] = []
        while true {
            let left = deadline.timeIntervalSinceNow
            let chunk: [UInt8]
            do {
                chunk = try receive(upTo: 256 * 1024, timeout: max(0, left))
            } catch {
                throw TestSupportError("receive from \(peer): no EOF within \(formatSeconds(timeout)) s (\(out.count) bytes arrived): \(error)")
            }
            if chunk.isEmpty { return out }
            out.append(contentsOf: chunk)
        }
    }

    /// Exactly `count` bytes; throws on EOF before that or after `timeout`.
    public func receive(exactly count: Int, timeout: Double = 30) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var out: [UInt8] = []
        while out.count < count {
            let chunk = try receive(upTo: count - out.count, timeout: max(0, deadline.timeIntervalSinceNow))
            if chunk.isEmpty { throw TestSupportError("receive from \(peer): EOF after \(out.count) of \(count) bytes") }
            out.append(contentsOf: chunk)
        }
        return out
    }

    /// One line (without the newline); throws on EOF first or after `timeout`.
    public func receiveLine(timeout: Double = 10) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var out: [UInt8] = []
        while true {
            let byte = try receive(upTo: 1, timeout: max(0, deadline.timeIntervalSinceNow))
            if byte.isEmpty { throw TestSupportError("receive from \(peer): EOF before a full line (got \"\(String(decoding: out, as: UTF8.self))\")") }
            if byte[0] == UInt8(ascii: "\n") { return String(decoding: out, as: UTF8.self) }
            out.append(byte[0])
        }
    }

    /// Full duplex in one thread: sends `bytes` while receiving, then shuts down writing and receives until EOF.
    /// Use it for echo-style peers, where sending everything before reading would fill both socket buffers.
    public func exchange(_ bytes: [UInt8], timeout: Double = 60) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var offset = 0
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var writing = true
        if bytes.isEmpty {
            shutdownWrite()
            writing = false
        }
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN) | (writing ? Int16(POLLOUT) : 0), revents: 0)
            let rc = poll(&pfd, 1, pollMilliseconds(until: deadline))
            if rc < 0 {
                if errno == EINTR { continue }
                throw TestSupportError.errno("poll")
            }
            if rc == 0 {
                throw TestSupportError("exchange with \(peer): not finished within \(formatSeconds(timeout)) s (sent \(offset) of \(bytes.count), received \(received.count) bytes)")
            }
            if pfd.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n == 0 { return received }
                if n > 0 {
                    received.append(contentsOf: buffer[0..<n])
                } else if errno != EAGAIN && errno != EINTR {
                    throw TestSupportError.errno("exchange with \(peer): receive (sent \(offset) of \(bytes.count), received \(received.count))")
                }
            }
            if writing && pfd.revents & Int16(POLLOUT) != 0 {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, min($0.count - offset, 256 * 1024), Int32(MSG_NOSIGNAL)) }
                if n > 0 {
                    offset += n
                    if offset == bytes.count {
                        shutdownWrite()
                        writing = false
                    }
                } else if n < 0 && errno != EAGAIN && errno != EINTR {
                    throw TestSupportError.errno("exchange with \(peer): send (sent \(offset) of \(bytes.count))")
                }
            }
        }
    }

    /// Closes the socket. Idempotent.
    public func close() {
        closed.withLock { done in
            if !done { _ = Glibc.close(fd) }
            done = true
        }
    }
}
