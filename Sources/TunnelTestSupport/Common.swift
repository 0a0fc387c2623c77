// TunnelTestSupport: real parts for tests, examples and the benchmark. No mocks, no NIO: POSIX and threads.
//
//   SSHDFixture      a throwaway OpenSSH server on a free loopback port (keys, known_hosts, log, stop/restart,
//                    suspend/resume to simulate a crashed or frozen server)
//   TCPTestServer    echo / replyAfterEOF / source / sink / http peers, one thread per connection
//   TCPTestClient    blocking client with timeouts (TCPTestConnection: send, receive, exchange, half-close)
//   ProcessRunner    run a command (captured output, timeout) or start one and await its output lines
//   ProcessTree      the /proc view used to find sshd's setsid() children
//   TestData         deterministic payloads, SHA-256
//   KeyFixtures      temp directories, ssh-keygen keys and synthetic key blobs for key and known_hosts tests
//   freeTCPPort, waitUntil, waitUntilStable, hasIPv6Loopback
//
// Every wait is bounded and fails with a message that says what was awaited. Everything is close-on-exec, so
// children (sshd, tunnel) never inherit a test's sockets or pipes. Linux (Glibc) only: /proc, pipe2, accept4,
// SOCK_CLOEXEC, MSG_NOSIGNAL.
//
// This file: errors, locking, bounded waiting, POSIX socket addresses.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every failure of the test support code, with a message meant to be read in a test log.
public struct TestSupportError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    static func errno(_ what: String, _ code: Int32 = Glibc.errno) -> TestSupportError {
        TestSupportError("\(what): \(String(cString: strerror(code))) (errno \(code))")
    }
}

/// A value guarded by an `NSCondition`; `withLock` runs a closure on it, `wait` blocks until a predicate holds.
final class Locked<Value>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Value

    init(_ value: Value) { self.value = value }

    @discardableResult
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&value)
    }

    /// Waits until `predicate` is true or `deadline` passes; returns whether the predicate held.
    func wait(until deadline: Date, _ predicate: (Value) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !predicate(value) {
            if !condition.wait(until: deadline) {
                return predicate(value)
            }
        }
        return true
    }
}

/// Runs blocking test code (sleeps, polling waits, blocking sockets) on a thread of its own and awaits it. Swift's
/// cooperative pool has one thread per core (two here), shared by every test running in parallel: a test that blocks
/// one of them for seconds stalls the async work of the others (a `Task` that should bind a listener at once waited
/// 10 s). Tests that block for long wrap their bodies in this.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// Polls `condition` with short sleeps until it is true; throws a clear error naming `what` after `timeout` seconds.
public func waitUntil(timeout: Double, _ what: String, _ condition: () -> Bool) throws {
    let start = Date()
    let deadline = start.addingTimeInterval(timeout)
    var pause = 0.002
    while true {
        if condition() { return }
        if Date() >= deadline {
            throw TestSupportError("timed out after \(formatSeconds(timeout)) s waiting for \(what)")
        }
        Thread.sleep(forTimeInterval: min(pause, max(0, deadline.timeIntervalSinceNow)))
        pause = min(pause * 2, 0.05)
    }
}

/// `waitUntil` for async tests: sleeps with `Task.sleep`, so the thread is free meanwhile. Use it where the condition
/// depends on async work of the same process (the Swift concurrency pool has as many threads as cores, and other
/// suites may be blocking theirs).
public func waitUntilAsync(timeout: Double, _ what: String, _ condition: () -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    var pause = 0.002
    while true {
        if condition() { return }
        if Date() >= deadline {
            throw TestSupportError("timed out after \(formatSeconds(timeout)) s waiting for \(what)")
        }
        try await Task.sleep(nanoseconds: UInt64(min(pause, max(0, deadline.timeIntervalSinceNow)) * 1e9))
        pause = min(pause * 2, 0.05)
    }
}

/// Polls `sample` until it is above zero and has not changed for `quiet` seconds: the readiness signal for "the
/// pipeline is full" or "the transfer stalled", which have no event of their own. Throws, naming `what` and the last
/// value, after `timeout` seconds.
public func waitUntilStable(timeout: Double, quiet: Double = 0.5, _ what: String, _ sample: () -> Int) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var last = sample()
    var since = Date()
    while Date() < deadline {
        Thread.sleep(forTimeInterval: 0.05)
        let now = sample()
        if now != last || now == 0 {
            last = now
            since = Date()
        } else if Date().timeIntervalSince(since) >= quiet {
            return
        }
    }
    throw TestSupportError("timed out after \(formatSeconds(timeout)) s waiting for \(what) (last value \(last))")
}

/// Whether `::1` can be bound here (containers and some CI hosts have no IPv6 loopback): the condition of the
/// tests that need it, so they are reported as skipped instead of passing without checking anything.
public let hasIPv6Loopback: Bool = {
    guard let address = try? SocketAddress(host: "::1", port: 0),
          let fd = try? makeStreamSocket(family: address.family) else { return false }
    defer { close(fd) }
    return address.withSockAddr { bind(fd, $0, $1) } == 0
}()

func formatSeconds(_ value: Double) -> String {
    value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
}

/// Seconds left until `deadline` as a poll(2) timeout in milliseconds (at least 0).
func pollMilliseconds(until deadline: Date) -> Int32 {
    let ms = deadline.timeIntervalSinceNow * 1000
    if ms <= 0 { return 0 }
    return Int32(min(ms.rounded(.up), Double(Int32.max)))
}

/// Waits with poll(2) for `events` on `fd` until `deadline`; returns false on timeout. EINTR is retried.
func pollFD(_ fd: Int32, events: Int16, until deadline: Date) throws -> Bool {
    while true {
        var pfd = pollfd(fd: fd, events: events, revents: 0)
        let rc = poll(&pfd, 1, pollMilliseconds(until: deadline))
        if rc > 0 { return true }
        if rc == 0 {
            if Date() >= deadline { return false }
            continue
        }
        if errno == EINTR { continue }
        throw TestSupportError.errno("poll")
    }
}

/// A numeric IPv4 or IPv6 address plus port in a `sockaddr_storage`.
struct SocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 { Int32(storage.ss_family) }

    init(host: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            throw TestSupportError("'\(host)' is not a numeric IP address (\(String(cString: gai_strerror(rc))))")
        }
        defer { freeaddrinfo(info) }
        length = info.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen)))
        }
    }

    /// A Unix-domain socket path (at most 107 bytes, as sockaddr_un allows).
    init(unixPath path: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw TestSupportError("socket path too long (\(bytes.count) bytes): \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        withUnsafeMutableBytes(of: &storage) { dst in
            withUnsafeBytes(of: &address) { dst.copyMemory(from: $0) }
        }
    }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    var port: Int {
        if family == AF_UNIX { return 0 }
        var copy = storage
        return withUnsafePointer(to: &copy) { raw in
            if family == AF_INET6 {
                return raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var copy = storage
        return withUnsafePointer(to: &copy) { raw in
            raw.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    static func local(of fd: Int32) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { raw in
            raw.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        if rc != 0 { throw TestSupportError.errno("getsockname") }
        return SocketAddress(storage: storage, length: length)
    }
}

/// "host:port", with brackets for IPv6 ("[::1]:22").
func hostPort(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}

func makeStreamSocket(family: Int32) throws -> Int32 {
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { throw TestSupportError.errno("socket") }
    return fd
}

func setNonBlocking(_ fd: Int32, _ on: Bool = true) {
    let flags = fcntl(fd, F_GETFL)
    _ = fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK))
}

func setReuseAddress(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// Ports handed out by `freeTCPPort` in this process, so two parallel tests never get the same one.
private let handedOutPorts = Locked<Set<Int>>([])

/// A TCP port on `host` that nothing listens on right now (bind to port 0, read it back, close).
/// Never returns the same port twice in one process. Another process may still take it before you bind it:
/// retry on EADDRINUSE where it matters (SSHDFixture does).
public func freeTCPPort(host: String = "127.0.0.1") throws -> Int {
    for _ in 0..<50 {
        let address = try SocketAddress(host: host, port: 0)
        let fd = try makeStreamSocket(family: address.family)
        defer { close(fd) }
        let rc = address.withSockAddr { bind(fd, $0, $1) }
        if rc != 0 { throw TestSupportError.errno("bind \(hostPort(host, 0))") }
        let port = try SocketAddress.local(of: fd).port
        let fresh = handedOutPorts.withLock { $0.insert(port).inserted }
        if fresh { return port }
    }
    throw TestSupportError("could not find a fresh free TCP port on \(host)")
}

/// A free TCP port below the kernel's ephemeral range (32768 and up on Linux), so no `bind(0)` or outgoing
/// connection of another test running at the same time can take it after it is released: for tests that check
/// that nothing listens on a port any more.
public func freeTCPPortOutsideEphemeralRange(host: String = "127.0.0.1") throws -> Int {
    var random = SplitMix64(state: UInt64(getpid()) &* 2_654_435_761 &+ UInt64(Date().timeIntervalSince1970 * 1000))
    for _ in 0..<200 {
        let port = 20_000 + random.below(12_000)
        guard handedOutPorts.withLock({ !$0.contains(port) }) else { continue }
        let address = try SocketAddress(host: host, port: port)
        let fd = try makeStreamSocket(family: address.family)
        defer { close(fd) }
        setReuseAddress(fd)
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0 else { continue }
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
    throw TestSupportError("could not find a free TCP port in 20000-31999 on \(host)")
}

// GNU extensions that Glibc's Swift module does not import; looked up once at run time.
private typealias Pipe2Fn = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
private typealias Accept4Fn = @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32
private typealias AddChdirFn = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
private typealias AddClosefromFn = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

private func lookup<F>(_ name: String, as: F.Type) -> F? {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
    return unsafeBitCast(symbol, to: F.self)
}

/// pipe2(2): a pipe whose ends are created with `flags` (O_CLOEXEC, O_NONBLOCK) atomically.
func makePipe(flags: Int32 = O_CLOEXEC) throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    guard let pipe2 = lookup("pipe2", as: Pipe2Fn.self) else { throw TestSupportError("pipe2 is not available") }
    guard pipe2(&fds, flags) == 0 else { throw TestSupportError.errno("pipe2") }
    return (fds[0], fds[1])
}

/// accept4(2) with SOCK_CLOEXEC, so no child process inherits accepted sockets.
func acceptCloexec(_ fd: Int32) -> Int32 {
    if let accept4 = lookup("accept4", as: Accept4Fn.self) {
        return accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
    }
    let conn = accept(fd, nil, nil)
    if conn >= 0 { _ = fcntl(conn, F_SETFD, FD_CLOEXEC) }
    return conn
}

/// posix_spawn_file_actions_addchdir_np (glibc >= 2.29).
func spawnActionsAddChdir(_ actions: inout posix_spawn_file_actions_t, _ dir: String) throws {
    guard let addchdir = lookup("posix_spawn_file_actions_addchdir_np", as: AddChdirFn.self) else {
        throw TestSupportError("this C library cannot set a child's working directory (posix_spawn_file_actions_addchdir_np)")
    }
    _ = addchdir(&actions, dir)
}

/// Close every descriptor from `lowest` up in the child (glibc 2.34+). NIO does not create its sockets
/// close-on-exec, so without this a child spawned while another test's tunnel listens would inherit the listening
/// socket and keep its port accepting after the tunnel closed it.
func spawnActionsCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
    guard let closefrom = lookup("posix_spawn_file_actions_addclosefrom_np", as: AddClosefromFn.self) else { return }
    _ = closefrom(&actions, lowest)
}
