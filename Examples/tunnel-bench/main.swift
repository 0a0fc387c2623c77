// tunnel-bench: throughput of `tunnel up` against OpenSSH's `ssh -L` on the same throwaway sshd, in the same run,
// plus the config parser's speed on a 10,000-line config. Run by hand (not in CI), results go in the README:
//
//   swift build -c release && .build/release/tunnel-bench [--mib 1024] [--runs 3] [--skip-ssh] [--parse-only]
//                                                        [--sshd-option 'MACs hmac-sha2-512']...
//
// Everything stays on 127.0.0.1. Needs root (sshd) and the OpenSSH client and server.
import Foundation
import TunnelConfig
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var mebibytes = 1024
    var runs = 3
    var skipSSH = false
    var parseOnly = false
    /// Extra sshd_config lines, e.g. "MACs hmac-sha2-512" to compare algorithms.
    var sshdOptions: [String] = []
    var tunnelBinary: String = {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        return here + "/tunnel"
    }()

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--mib": mebibytes = iterator.next().flatMap { Int($0) } ?? mebibytes
            case "--runs": runs = iterator.next().flatMap { Int($0) } ?? runs
            case "--tunnel": tunnelBinary = iterator.next() ?? tunnelBinary
            case "--skip-ssh": skipSSH = true
            case "--sshd-option": sshdOptions += iterator.next().map { [$0] } ?? []
            case "--parse-only": parseOnly = true
            default:
                print("usage: tunnel-bench [--mib N] [--runs N] [--tunnel PATH] [--skip-ssh] [--parse-only] [--sshd-option 'Keyword value']...")
                exit(2)
            }
        }
    }
}

// MARK: - Bulk TCP endpoints: C-speed source and sink so the measurement is of the tunnel, not of the test tool

/// Accepts connections; on each, sends `bytes` from a constant 1 MiB buffer ("download") or reads until EOF
/// and answers with the count ("upload"), depending on the first byte the client sends: "D" or "U".
final class BulkServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let bytes: Int

    init(bytes: Int) throws {
        self.bytes = bytes
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw TestSupportError("bench server: cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        _ = self.port
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            Thread.detachNewThread { [self] in serve(client) }
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var mode: UInt8 = 0
        guard recv(client, &mode, 1, 0) == 1 else { return }
        let chunk = [UInt8](repeating: 0x5A, count: 1 << 20)
        if mode == UInt8(ascii: "D") {
            var left = bytes
            while left > 0 {
                let n = chunk.withUnsafeBytes { send(client, $0.baseAddress, min(left, $0.count), Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                left -= n
            }
        } else {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var total = 0
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                total += n
            }
            let answer = Array("\(total)\n".utf8)
            _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }
}

/// Moves `bytes` through `port` in one direction and returns MB/s (10^6 bytes per second).
func measure(port: Int, bytes: Int, download: Bool) throws -> Double {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestSupportError("cannot connect to 127.0.0.1:\(port)") }
    var mode = download ? UInt8(ascii: "D") : UInt8(ascii: "U")
    let start = Date()
    guard send(fd, &mode, 1, 0) == 1 else { throw TestSupportError("send failed") }
    var buffer = [UInt8](repeating: 0x33, count: 1 << 20)
    var total = 0
    if download {
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            total += n
        }
    } else {
        var left = bytes
        while left > 0 {
            let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress, min(left, $0.count), Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw TestSupportError("upload send failed") }
            left -= n
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer = [UInt8](repeating: 0, count: 64)
        let n = answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        total = Int(String(decoding: answer.prefix(max(0, n)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
    let seconds = Date().timeIntervalSince(start)
    guard total == bytes else { throw TestSupportError("moved \(total) of \(bytes) bytes") }
    return Double(bytes) / seconds / 1_000_000
}

func peakRSSKiB(_ pid: pid_t) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

// MARK: - Config parsing speed (issue: 10,000 lines with Includes in under 100 ms)

func benchmarkParse() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tunnel-bench-parse-\(getpid())").path
    try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // 10 included files of 100 hosts x 10 lines, plus a main file: 10,000+ lines in all.
    var lineCount = 0
    for file in 0..<10 {
        var text = ""
        for host in 0..<100 {
            let name = "h\(file)-\(host)"
            text += """
                # host \(name)
                Host \(name) \(name).alias
                    HostName \(name).example.com
                    Port \(2000 + host)
                    User deploy
                    IdentityFile ~/.ssh/id_\(name)
                    LocalForward 127.0.0.1:\(10000 + file * 100 + host) db.internal:5432
                    ServerAliveInterval 15
                    StrictHostKeyChecking accept-new
                    ConnectTimeout 10

                """
            lineCount += 10
        }
        try text.write(toFile: "\(directory)/conf.d/\(file).conf", atomically: true, encoding: .utf8)
    }
    let main = "\(directory)/main.conf"
    try "Include \(directory)/conf.d/*.conf\nHost *\n    ServerAliveCountMax 3\n".write(toFile: main, atomically: true, encoding: .utf8)
    lineCount += 3

    var timings: [Double] = []
    var hosts = 0
    for _ in 0..<5 {
        let start = Date()
        let config = try TunnelConfigFile.load(path: main)
        hosts = config.tunnelHostNames.count
        timings.append(Date().timeIntervalSince(start) * 1000)
    }
    var resolveTimings: [Double] = []
    let config = try TunnelConfigFile.load(path: main)
    for _ in 0..<3 {
        let start = Date()
        _ = config.tunnelHosts
        resolveTimings.append(Date().timeIntervalSince(start) * 1000)
    }
    print(String(format: "config: %d lines in 11 files, %d tunnel hosts: load+check %.1f ms (median of 5), resolving every host %.1f ms",
                 lineCount, hosts, median(timings), median(resolveTimings)))
}

// MARK: - Throughput

func benchmarkThroughput(_ options: Options) throws {
    let bytes = options.mebibytes << 20
    let server = try BulkServer(bytes: bytes)
    var sshdOptions = SSHDFixture.Options()
    sshdOptions.logLevel = "ERROR"
    sshdOptions.extraConfig = options.sshdOptions
    let sshd = try SSHDFixture(options: sshdOptions)
    defer { sshd.stop() }
    print("sshd on \(sshd.hostAndPort), \(options.mebibytes) MiB per transfer, \(options.runs) runs, median MB/s (10^6 B/s)")

    var rows: [(String, Double, Double, String)] = []
    func run(_ label: String, port: Int, pid: pid_t?) throws {
        var down: [Double] = [], up: [Double] = []
        for _ in 0..<options.runs {
            down.append(try measure(port: port, bytes: bytes, download: true))
            up.append(try measure(port: port, bytes: bytes, download: false))
        }
        let rss = pid.flatMap(peakRSSKiB).map { "\($0 / 1024) MiB" } ?? "-"
        rows.append((label, median(down), median(up), rss))
    }

    try run("direct (no tunnel)", port: server.port, pid: nil)

    // tunnel up
    let localPort = try freeTCPPort()
    let config = sshd.directory + "/bench.conf"
    try """
        Host bench
            HostName \(sshd.host)
            Port \(sshd.port)
            User \(sshd.user)
            IdentityFile \(sshd.clientKeyPath)
            UserKnownHostsFile \(sshd.knownHostsPath)
            LocalForward 127.0.0.1:\(localPort) 127.0.0.1:\(server.port)

        """.write(toFile: config, atomically: true, encoding: .utf8)
    let tunnel = try ProcessRunner(options.tunnelBinary, ["up", config]).start()
    try tunnel.waitForLine(containing: "connected to", timeout: 20)
    try run("tunnel up (libssh2, aes128-ctr + hmac-sha2-256)", port: localPort, pid: tunnel.pid)
    _ = tunnel.terminate()

    guard !options.skipSSH else { return printRows(rows) }
    for (label, extra) in [("ssh -L (OpenSSH default: chacha20-poly1305)", [String]()),
                           ("ssh -L -c aes128-ctr -m hmac-sha2-256", ["-c", "aes128-ctr", "-m", "hmac-sha2-256"]),
                           ("ssh -L -c aes128-gcm@openssh.com", ["-c", "aes128-gcm@openssh.com"])] {
        let port = try freeTCPPort()
        let ssh = try ProcessRunner("/usr/bin/ssh", sshd.sshOptions() + extra
            + ["-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:\(port):127.0.0.1:\(server.port)", sshd.destination]).start()
        try waitUntil(timeout: 20, "ssh -L to listen on \(port)") { TCPTestClient.isAccepting(port: port) }
        try run(label, port: port, pid: ssh.pid)
        _ = ssh.terminate()
    }
    printRows(rows)
}

func printRows(_ rows: [(String, Double, Double, String)]) {
    let width = rows.map(\.0.count).max() ?? 10
    print("\("path".padding(toLength: width, withPad: " ", startingAt: 0))  download  upload  peak RSS")
    for (label, down, up, rss) in rows {
        print("\(label.padding(toLength: width, withPad: " ", startingAt: 0))  \(String(format: "%8.0f", down))  \(String(format: "%6.0f", up))  \(rss)")
    }
}

let options = Options(CommandLine.arguments)
do {
    try benchmarkParse()
    if !options.parseOnly { try benchmarkThroughput(options) }
} catch {
    print("tunnel-bench: \(error)")
    exit(1)
}
