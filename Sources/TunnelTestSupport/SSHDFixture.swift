// A throwaway OpenSSH server for tests: its own keys, config and port on loopback, owned by the test.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starts `/usr/sbin/sshd -D -e -f <config>` on a free loopback port with a fresh ed25519 host key and an
/// ed25519 client key (no passphrase) authorized for the current user. `stop()` (also run by deinit) ends the
/// listener and every descendant; deinit also deletes the temporary directory unless `keepDirectory` is set.
/// All methods may be called from any thread; lifecycle calls (stop/restart/suspend/resume) are serialized.
/// Keep the fixture referenced for as long as the server is needed (`defer { sshd.stop() }` or
/// `withExtendedLifetime`): in optimized builds Swift may release it after its last use, and deinit stops sshd.
public final class SSHDFixture: @unchecked Sendable {
    public struct Options: Sendable {
        /// A loopback address: "127.0.0.1", "127.0.0.2", ..., or "::1".
        public var listenAddress = "127.0.0.1"
        /// sshd_config lines. Lines before the first `Match` go *before* the defaults (sshd keeps the first
        /// value of a keyword, so they override them); `Match` and everything after it goes at the end.
        public var extraConfig: [String] = []
        /// sshd LogLevel: QUIET, FATAL, ERROR, INFO, VERBOSE, DEBUG1 (shows each direct-tcpip target), ...
        public var logLevel = "INFO"
        /// Keep the temporary directory after deinit (for debugging).
        public var keepDirectory = false
        /// How long to wait for sshd to listen.
        public var startTimeout: Double = 10
        /// Run sshd inside this network namespace (reachable only from inside it, or through a
        /// `NamespaceBridge`); its log level must show "Server listening on" (INFO or more).
        public var namespace: NetworkNamespace?
        public init() {}
    }

    public static let sshdPath = "/usr/sbin/sshd"

    public let options: Options
    public let directory: String
    public let host: String
    /// The user the client keys are authorized for (the current user).
    public let user: String
    public let configPath: String
    public let hostKeyPath: String
    public let clientKeyPath: String
    public let authorizedKeysPath: String
    /// "ssh-ed25519 AAAA..." (no comment).
    public let hostPublicKeyLine: String
    /// "SHA256:..." as ssh-keygen -l prints it.
    public let hostKeyFingerprint: String
    /// A known_hosts file with the line for this server ("[127.0.0.1]:PORT ssh-ed25519 AAAA...").
    public let knownHostsPath: String

    private struct State {
        var process: RunningProcess?
        var port = 0
        var earlierLog = ""
        var keyCounter = 0
        var stopped = true
    }
    private let state = Locked(State())
    private let lifecycle = NSLock()

    public var port: Int { state.withLock { $0.port } }
    /// The listener's pid while it runs.
    public var listenerPID: pid_t? { state.withLock { s in s.process.flatMap { $0.isRunning ? $0.pid : nil } } }
    /// sshd's stderr so far, over all starts (restarts are marked with a line "--- sshd restarted ---").
    public var log: String { state.withLock { s in s.earlierLog + (s.process?.stderr ?? "") } }
    /// "user@host", for `ssh`.
    public var destination: String { "\(user)@\(host)" }
    /// "127.0.0.1:PORT" or "[::1]:PORT".
    public var hostAndPort: String { hostPort(host, port) }

    public init(options: Options = .init()) throws {
        self.options = options
        host = options.listenAddress
        user = Self.currentUser()
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/tunnel-sshd.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestSupportError.errno("SSHDFixture: mkdtemp in \(base)")
        }
        directory = String(cString: made)
        configPath = "\(directory)/sshd_config"
        hostKeyPath = "\(directory)/ssh_host_ed25519_key"
        clientKeyPath = "\(directory)/id_ed25519"
        authorizedKeysPath = "\(directory)/authorized_keys"
        knownHostsPath = "\(directory)/known_hosts"
        do {
            try Self.keygen(type: "ed25519", path: hostKeyPath, comment: "tunnel-test-host")
            try Self.keygen(type: "ed25519", path: clientKeyPath, comment: "tunnel-test-client")
            let clientLine = try Self.publicKeyLine(clientKeyPath + ".pub")
            try (clientLine + "\n").write(toFile: authorizedKeysPath, atomically: true, encoding: .utf8)
            hostPublicKeyLine = try Self.publicKeyLine(hostKeyPath + ".pub")
            let fp = try ProcessRunner("ssh-keygen", ["-l", "-E", "sha256", "-f", hostKeyPath + ".pub"]).runChecked(timeout: 30)
            hostKeyFingerprint = fp.stdoutText.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        } catch {
            if !options.keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
            throw error
        }
        _ = mkdir("/run/sshd", 0o755)   // privilege separation directory; may exist already
        // From here on a throw runs deinit, which stops sshd and removes the directory.
        try startLocked(fixedPort: nil)
        try writeKnownHosts(to: knownHostsPath)
    }

    deinit {
        stop()
        if !options.keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    // MARK: keys and known_hosts

    /// The known_hosts line for this server: "[127.0.0.1]:PORT ssh-ed25519 AAAA...".
    public var knownHostsLine: String { "[\(host)]:\(port) \(hostPublicKeyLine)" }

    public func writeKnownHosts(to path: String) throws {
        try (knownHostsLine + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A new key pair of `type` ("ed25519", "ecdsa", "rsa", ...), authorized for `user`; returns the private key path.
    public func makeClientKey(type: String, passphrase: String = "") throws -> String {
        let path = try newKey(type: type, prefix: "id", passphrase: passphrase)
        let line = try Self.publicKeyLine(path + ".pub")
        try state.withLock { _ in
            guard let handle = FileHandle(forWritingAtPath: authorizedKeysPath) else {
                throw TestSupportError("SSHDFixture: cannot open \(authorizedKeysPath)")
            }
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((line + "\n").utf8))
        }
        return path
    }

    /// A new ed25519 key pair that the server does not accept; returns the private key path.
    public func makeUnauthorizedKey() throws -> String {
        try newKey(type: "ed25519", prefix: "unauthorized")
    }

    private func newKey(type: String, prefix: String, passphrase: String = "") throws -> String {
        let n = state.withLock { s -> Int in
            s.keyCounter += 1
            return s.keyCounter
        }
        let path = "\(directory)/\(prefix)_\(type)_\(n)"
        try Self.keygen(type: type, path: path, comment: "tunnel-test-\(prefix)-\(n)", passphrase: passphrase)
        return path
    }

    /// OpenSSH client options for this server (no destination): `ssh <sshOptions()> <destination> <command>`.
    /// Uses only the given key, this server's known_hosts, strict host key checking, no agent, no prompts.
    public func sshOptions(identity: String? = nil) -> [String] {
        ["-F", "/dev/null", "-i", identity ?? clientKeyPath, "-p", String(port),
         "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
         "-o", "UserKnownHostsFile=\(knownHostsPath)", "-o", "GlobalKnownHostsFile=/dev/null",
         "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
    }

    // MARK: lifecycle

    /// SIGTERM to the listener and every descendant (found through /proc, since session processes call
    /// setsid), then waits for them; SIGKILL for what is left after 5 s. Idempotent.
    public func stop() {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        stopLocked()
    }

    /// Stops and starts again on the same port with the same host key and authorized keys.
    public func restart() throws {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        stopLocked()
        state.withLock { $0.earlierLog += "--- sshd restarted ---\n" }
        try startLocked(fixedPort: port)
    }

    /// SIGKILL to the listener and every descendant (a crashed server: no goodbye on any connection; the kernel
    /// resets them), then waits until they are gone. `start()` brings it back on the same port.
    public func crash() {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        stopLocked(signal: SIGKILL)
    }

    /// Starts a stopped or killed server again on the same port, with the same keys.
    public func start() throws {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        guard state.withLock({ $0.process == nil }) else { return }
        try startLocked(fixedPort: port)
    }

    /// SIGSTOP to the listener and every descendant: a frozen server (TCP still completes in the kernel).
    /// Returns once they are all stopped.
    public func suspend() {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        guard let process = state.withLock({ $0.process }), process.isRunning else { return }
        _ = freezeTree(process)
    }

    /// SIGCONT to the listener and every descendant; returns once they run again.
    public func resume() {
        lifecycle.lock()
        defer { lifecycle.unlock() }
        guard let process = state.withLock({ $0.process }), process.isRunning else { return }
        let tree = [process.pid] + ProcessTree.descendants(of: process.pid)
        for pid in tree.dropFirst() { kill(pid, SIGCONT) }
        process.signal(SIGCONT)
        try? waitUntil(timeout: 5, "sshd processes to continue") {
            tree.allSatisfy { ProcessTree.entry($0).map { $0.state != "T" } ?? true }
        }
    }

    /// The listener and its live descendants right now (empty when stopped).
    public func processes() -> [pid_t] {
        guard let pid = listenerPID else { return [] }
        return [pid] + ProcessTree.descendants(of: pid)
    }

    /// Stops the listener first so it forks no more, then every descendant until the set is stable, and waits
    /// (up to 5 s) until all of them really are stopped: signal delivery is asynchronous.
    private func freezeTree(_ process: RunningProcess) -> [pid_t] {
        process.signal(SIGSTOP)
        waitUntilStopped([process.pid])
        var frozen = Set<pid_t>()
        for _ in 0..<50 {
            let now = Set(ProcessTree.descendants(of: process.pid))
            let fresh = now.subtracting(frozen)
            if fresh.isEmpty { break }
            for pid in fresh { kill(pid, SIGSTOP) }
            waitUntilStopped(Array(fresh))
            frozen.formUnion(fresh)
        }
        return Array(frozen)
    }

    private func waitUntilStopped(_ pids: [pid_t]) {
        try? waitUntil(timeout: 5, "processes \(pids) to stop") {
            pids.allSatisfy { pid in
                guard let e = ProcessTree.entry(pid) else { return true }
                return e.state == "T" || e.state == "t" || e.state == "Z" || e.state == "X"
            }
        }
    }

    /// Ends the listener and every descendant with `signal` (SIGTERM: a polite stop; SIGKILL: a crash).
    private func stopLocked(signal: Int32 = SIGTERM) {
        let process: RunningProcess? = state.withLock { s in
            s.stopped = true
            return s.process
        }
        guard let process else { return }
        if process.isRunning {
            let tree = freezeTree(process)
            process.signal(signal)
            for pid in tree { kill(pid, signal) }
            for pid in tree { kill(pid, SIGCONT) }
            process.signal(SIGCONT)
            let allGone = { !process.isRunning && !tree.contains(where: ProcessTree.isAlive) }
            if (try? waitUntil(timeout: 5, "sshd to exit", allGone)) == nil {
                process.signal(SIGKILL)
                for pid in tree where ProcessTree.isAlive(pid) { kill(pid, SIGKILL) }
                try? waitUntil(timeout: 5, "sshd to die", allGone)
            }
        }
        _ = try? process.waitForExit(timeout: 2)
        state.withLock { s in
            s.earlierLog += process.stderr + (signal == SIGKILL ? "--- sshd killed ---\n" : "")
            s.process = nil
        }
    }

    private func startLocked(fixedPort: Int?) throws {
        var failures: [String] = []
        for attempt in 1...8 {
            let port = try fixedPort ?? freeTCPPort(host: host)
            try writeConfig(port: port)
            let arguments = ["-D", "-e", "-f", configPath]
            let (program, argv) = options.namespace?.command(Self.sshdPath, arguments) ?? (Self.sshdPath, arguments)
            let process = try ProcessRunner(program, argv).start()
            state.withLock { s in
                s.process = process
                s.port = port
                s.stopped = false
            }
            do {
                try waitUntilListening(process, port: port)
                return
            } catch {
                let log = process.stderr
                stopLocked()
                failures.append("attempt \(attempt) on port \(port): \(error)")
                let bindRace = log.contains("Address already in use") || log.contains("Cannot bind any address")
                if !bindRace { break }
                if fixedPort != nil { Thread.sleep(forTimeInterval: 0.25) }   // port held by someone else: retry
            }
        }
        throw TestSupportError("SSHDFixture: sshd did not start (config \(configPath))\n" + failures.joined(separator: "\n"))
    }

    private func waitUntilListening(_ process: RunningProcess, port: Int) throws {
        let quiet = ["QUIET", "FATAL", "ERROR"].contains(options.logLevel.uppercased())
        if !quiet {
            try process.waitForLine(containing: "Server listening on", timeout: options.startTimeout)
            return
        }
        try waitUntil(timeout: options.startTimeout, "sshd to accept on \(hostPort(host, port))") {
            !process.isRunning || TCPTestClient.isAccepting(host: host, port: port)
        }
        if !process.isRunning {
            throw TestSupportError("sshd exited (\(process.exitStatus!))\n" + process.outputSummary())
        }
    }

    private func writeConfig(port: Int) throws {
        let matchIndex = options.extraConfig.firstIndex {
            $0.trimmingCharacters(in: .whitespaces).lowercased().hasPrefix("match")
        } ?? options.extraConfig.count
        let lines = ["# written by TunnelTestSupport.SSHDFixture"]
            + options.extraConfig[..<matchIndex]
            + [
                "Port \(port)",
                "ListenAddress \(host)",
                "HostKey \(hostKeyPath)",
                "PidFile \(directory)/sshd.pid",
                "AuthorizedKeysFile \(authorizedKeysPath)",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowTcpForwarding yes",
                "PrintMotd no",
                "MaxStartups 200",
                "MaxSessions 200",
                "LogLevel \(options.logLevel)",
            ]
            + options.extraConfig[matchIndex...]
        try (lines.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    // MARK: helpers

    private static func keygen(type: String, path: String, comment: String, passphrase: String = "") throws {
        var args = ["-q", "-t", type, "-N", passphrase, "-C", comment, "-f", path]
        if type == "rsa" { args += ["-b", "3072"] }
        try ProcessRunner("ssh-keygen", args).runChecked(timeout: 60)
    }

    /// "type base64" of a `.pub` file (no comment): the form known_hosts and authorized_keys lines start with.
    public static func publicKeyLine(_ path: String) throws -> String {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 2 else { throw TestSupportError("SSHDFixture: unexpected public key in \(path): \(text)") }
        return "\(fields[0]) \(fields[1])"
    }

    static func currentUser() -> String {
        if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name { return String(cString: name) }
        return ProcessInfo.processInfo.environment["USER"] ?? "root"
    }
}
