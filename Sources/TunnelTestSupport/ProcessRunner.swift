// Running child processes from tests: one-shot commands with captured output and a timeout, and long-running
// children (sshd, the `tunnel` binary) whose output lines can be awaited as they arrive.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum ProcessExit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): return "exit status \(code)"
        case .signaled(let sig): return "signal \(sig) (\(String(cString: strsignal(sig))))"
        }
    }

    public var succeeded: Bool { self == .exited(0) }
}

/// A command to run: executable (absolute path, or a name looked up in PATH), arguments, environment, directory.
///
/// `run` waits for the command and returns its output; `start` returns a `RunningProcess` that keeps running.
/// Children get an empty signal mask and default signal dispositions, and inherit no descriptor of this
/// process but stdin/stdout/stderr (all descriptors made here are close-on-exec).
public struct ProcessRunner: Sendable {
    public var executable: String
    public var arguments: [String]
    /// The whole environment of the child; `nil` inherits this process's environment.
    public var environment: [String: String]?
    /// Added to (or replacing entries of) the environment above.
    public var extraEnvironment: [String: String]
    public var currentDirectory: String?

    public init(_ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                extraEnvironment: [String: String] = [:], currentDirectory: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.extraEnvironment = extraEnvironment
        self.currentDirectory = currentDirectory
    }

    /// What a finished command printed, and how it ended.
    public struct Output: Sendable {
        public var exit: ProcessExit
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
        public var succeeded: Bool { exit.succeeded }
    }

    /// The command line as a shell would show it (for messages).
    public var commandLine: String {
        ([executable] + arguments).map { arg in
            arg.isEmpty || arg.contains(where: { " \t\n'\"\\$`*?;&|<>()".contains($0) })
                ? "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'" : arg
        }.joined(separator: " ")
    }

    /// Runs the command to completion, feeding it `input` on stdin. After `timeout` seconds the child is killed
    /// (SIGKILL) and a `TestSupportError` naming the command and showing its output so far is thrown.
    /// A non-zero exit is not an error here: look at `exit` (or use `runChecked`).
    public func run(input: [UInt8] = [], timeout: Double = 60) throws -> Output {
        let process = try start(stdinPipe: true)
        if input.isEmpty {
            process.closeStdin()
        } else {
            // On its own thread, so a child that does not read cannot block us past the timeout.
            let writer = Thread {
                // The child may exit without reading everything; what it printed is still what matters.
                try? process.writeStdin(input)
                process.closeStdin()
            }
            writer.name = "stdin of \(process.pid)"
            writer.start()
        }
        let exit: ProcessExit
        do {
            exit = try process.waitForExit(timeout: timeout)
        } catch {
            process.signal(SIGKILL)
            _ = try? process.waitForExit(timeout: 10)
            throw TestSupportError("`\(commandLine)` did not finish within \(formatSeconds(timeout)) s and was killed\n"
                + process.outputSummary())
        }
        return Output(exit: exit, stdout: process.stdoutBytes, stderr: process.stderrBytes)
    }

    /// Like `run`, but throws (with the command's stderr) unless it exits with status 0.
    @discardableResult
    public func runChecked(input: [UInt8] = [], timeout: Double = 60) throws -> Output {
        let output = try run(input: input, timeout: timeout)
        guard output.succeeded else {
            throw TestSupportError("`\(commandLine)` failed with \(output.exit)\nstdout: \(output.stdoutText)\nstderr: \(output.stderrText)")
        }
        return output
    }

    /// Starts the command and returns at once. stdout and stderr are captured separately (or both into stdout
    /// when `mergeStderr`); stdin is /dev/null unless `stdinPipe`, in which case use `writeStdin`/`closeStdin`.
    public func start(stdinPipe: Bool = false, mergeStderr: Bool = false) throws -> RunningProcess {
        try RunningProcess(runner: self, stdinPipe: stdinPipe, mergeStderr: mergeStderr)
    }

    /// The path of an executable built by SwiftPM next to the running test binary (for example `tunnel` in
    /// `.build/debug/`). `environmentOverride` names a variable (e.g. "TUNNEL_BIN") that, when set, wins.
    /// `swift test` builds only what the test targets depend on: run `swift build --build-tests` first (Tests/run
    /// does), or the binary may be missing or stale.
    public static func builtProduct(_ name: String, environmentOverride: String? = nil) throws -> String {
        if let variable = environmentOverride, let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty {
            guard access(path, X_OK) == 0 else { throw TestSupportError("\(variable)=\(path) is not an executable file") }
            return path
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        var looked: [String] = []
        for _ in 0..<4 {   // the test binary may sit inside a bundle directory (*.xctest/Contents/MacOS)
            let candidate = dir.appendingPathComponent(name).path
            looked.append(candidate)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
               access(candidate, X_OK) == 0 {
                return candidate
            }
            dir = dir.deletingLastPathComponent()
        }
        throw TestSupportError("built product `\(name)` not found (looked at \(looked.joined(separator: ", "))); "
            + "run `swift build --build-tests` first" + (environmentOverride.map { " or set \($0)" } ?? ""))
    }

    func resolvedExecutable(searchPath: String?) throws -> String {
        if executable.contains("/") {
            guard access(executable, X_OK) == 0 else { throw TestSupportError.errno("cannot execute \(executable)") }
            return executable
        }
        let path = searchPath ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(executable)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw TestSupportError("`\(executable)` not found in PATH (\(path))")
    }

    func environmentEntries() -> [String] {
        var env = environment ?? ProcessInfo.processInfo.environment
        for (key, value) in extraEnvironment { env[key] = value }
        // Each `tunnel` run gets its own runtime directory unless the test chose one: `tunnel up` claims a control
        // socket there (one instance per socket), and tests run in parallel.
        if (executable as NSString).lastPathComponent == "tunnel", extraEnvironment["XDG_RUNTIME_DIR"] == nil,
           environment?["XDG_RUNTIME_DIR"] == nil {
            env["XDG_RUNTIME_DIR"] = Self.freshRuntimeDirectory()
        }
        return env.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// A new 0700 directory under /tmp (left behind empty: `tunnel up` removes its socket when it stops).
    static func freshRuntimeDirectory() -> String {
        var template = Array("/tmp/tunnel-test-rt-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { return "/tmp" }
        return String(cString: made)
    }
}

/// Which output of a child.
public enum OutputStream: Sendable {
    case stdout, stderr
}

/// A started child process. Its output is read continuously by background threads; its exit is collected by
/// a thread blocked in `waitpid` on its pid only. Safe to use from several threads. If it is still running when
/// this object goes away, it is killed (SIGKILL).
public final class RunningProcess: @unchecked Sendable {
    public let pid: pid_t
    public let commandLine: String

    private struct State {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var openStreams = 0
        var exit: ProcessExit?
    }
    private let state = Locked(State())
    private let stdinFD: Locked<Int32>

    init(runner: ProcessRunner, stdinPipe: Bool, mergeStderr: Bool) throws {
        commandLine = runner.commandLine
        let env = runner.environmentEntries()
        let searchPath = (runner.environment ?? ProcessInfo.processInfo.environment)["PATH"]
        let path = try runner.resolvedExecutable(searchPath: runner.extraEnvironment["PATH"] ?? searchPath)

        let outPipe = try makePipe()
        let errPipe: (read: Int32, write: Int32)? = mergeStderr ? nil : try makePipe()
        let inPipe: (read: Int32, write: Int32)? = stdinPipe ? try makePipe() : nil
        if stdinPipe { _ = Glibc.signal(SIGPIPE, SIG_IGN) }   // writing to a child that exited must throw, not kill us

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let inPipe {
            posix_spawn_file_actions_adddup2(&actions, inPipe.read, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe?.write ?? outPipe.write, 2)
        if let dir = runner.currentDirectory {
            try spawnActionsAddChdir(&actions, dir)
        }
        // After the three standard descriptors are in place: nothing else of this process leaks into the child.
        spawnActionsCloseFrom(&actions, 3)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attr, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] {
            sigaddset(&defaults, sig)
        }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + runner.arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var childPID: pid_t = 0
        let rc = posix_spawn(&childPID, path, &actions, &attr, argv, envp)

        close(outPipe.write)
        if let errPipe { close(errPipe.write) }
        if let inPipe { close(inPipe.read) }
        guard rc == 0 else {
            close(outPipe.read)
            if let errPipe { close(errPipe.read) }
            if let inPipe { close(inPipe.write) }
            throw TestSupportError.errno("cannot start `\(runner.commandLine)`", rc)
        }
        pid = childPID
        let spawned = childPID
        stdinFD = Locked(inPipe?.write ?? -1)

        state.withLock { $0.openStreams = errPipe == nil ? 1 : 2 }
        startReader(fd: outPipe.read, stream: .stdout)
        if let errPipe { startReader(fd: errPipe.read, stream: .stderr) }
        let state = self.state
        let reaper = Thread {
            var status: Int32 = 0
            var rc: pid_t
            repeat { rc = waitpid(spawned, &status, 0) } while rc < 0 && errno == EINTR
            let exit: ProcessExit
            if rc < 0 {
                exit = .exited(-1)
            } else if status & 0x7f == 0 {
                exit = .exited((status >> 8) & 0xff)
            } else {
                exit = .signaled(status & 0x7f)
            }
            state.withLock { $0.exit = exit }
        }
        reaper.name = "reap \(spawned)"
        reaper.start()
    }

    private func startReader(fd: Int32, stream: OutputStream) {
        let state = self.state
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                state.withLock {
                    if stream == .stdout {
                        $0.stdout.append(contentsOf: buffer[0..<n])
                    } else {
                        $0.stderr.append(contentsOf: buffer[0..<n])
                    }
                }
            }
            close(fd)
            state.withLock { $0.openStreams -= 1 }
        }
        thread.name = "read \(stream) of \(pid)"
        thread.start()
    }

    deinit {
        if state.withLock({ $0.exit == nil }) {
            kill(pid, SIGKILL)
            _ = state.wait(until: Date().addingTimeInterval(5)) { $0.exit != nil }
        }
        closeStdin()
    }

    // MARK: output

    public var stdoutBytes: [UInt8] { state.withLock { $0.stdout } }
    public var stderrBytes: [UInt8] { state.withLock { $0.stderr } }
    public var stdout: String { String(decoding: stdoutBytes, as: UTF8.self) }
    public var stderr: String { String(decoding: stderrBytes, as: UTF8.self) }

    /// Complete lines (newline-terminated, newline removed) printed so far on `stream`; once the process has
    /// exited and its output is drained, a last unterminated line counts too.
    public func lines(_ stream: OutputStream = .stderr) -> [String] {
        state.withLock { Self.lines(of: $0, stream) }
    }

    private static func lines(of s: State, _ stream: OutputStream) -> [String] {
        let bytes = stream == .stdout ? s.stdout : s.stderr
        var parts = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if let last = parts.last, !(last.isEmpty == false && s.exit != nil && s.openStreams == 0) {
            parts.removeLast()   // incomplete (or empty after the final newline)
        }
        return parts.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Waits until a line containing `text` appears on `stream` at index `startIndex` or later, and returns it.
    /// Throws at once if the process exits first, or after `timeout` seconds; both errors show the output so far.
    @discardableResult
    public func waitForLine(containing text: String, in stream: OutputStream = .stderr, from startIndex: Int = 0,
                            timeout: Double) throws -> String {
        var found: String?
        var exited = false
        _ = state.wait(until: Date().addingTimeInterval(timeout)) { s in
            let lines = Self.lines(of: s, stream)
            if startIndex < lines.count, let line = lines[startIndex...].first(where: { $0.contains(text) }) {
                found = line
                return true
            }
            exited = s.exit != nil && s.openStreams == 0
            return exited
        }
        if let found { return found }
        let why = exited ? "exited (\(exitStatus.map { "\($0)" } ?? "?"))" : "printed nothing like it within \(formatSeconds(timeout)) s"
        throw TestSupportError("`\(commandLine)` \(why) before printing a line containing \"\(text)\" on \(stream)\n"
            + outputSummary())
    }

    /// stdout and stderr so far, for error messages.
    public func outputSummary() -> String {
        let (out, err) = state.withLock { ($0.stdout, $0.stderr) }
        func show(_ bytes: [UInt8]) -> String {
            let text = String(decoding: bytes.suffix(8192), as: UTF8.self)
            return text.isEmpty ? "(empty)" : text
        }
        return "--- stdout:\n\(show(out))\n--- stderr:\n\(show(err))"
    }

    // MARK: stdin

    /// Writes all of `bytes` to the child's stdin (only when started with `stdinPipe: true`).
    public func writeStdin(_ bytes: [UInt8]) throws {
        try stdinFD.withLock { fd in
            guard fd >= 0 else { throw TestSupportError("stdin of `\(commandLine)` is not an open pipe") }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw TestSupportError.errno("write to stdin of `\(commandLine)`")
                }
                offset += n
            }
        }
    }

    public func closeStdin() {
        stdinFD.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    // MARK: signals and exit

    /// How it ended, or nil while it runs.
    public var exitStatus: ProcessExit? { state.withLock { $0.exit } }
    public var isRunning: Bool { exitStatus == nil }

    /// Sends `sig` unless the process has already been reaped (so a reused pid is never signalled).
    public func signal(_ sig: Int32) {
        state.withLock { s in
            if s.exit == nil { kill(pid, sig) }
        }
    }

    /// Waits for the process to end (and, up to 2 s more, for its output to be drained); throws after `timeout`.
    @discardableResult
    public func waitForExit(timeout: Double) throws -> ProcessExit {
        guard state.wait(until: Date().addingTimeInterval(timeout), { $0.exit != nil }) else {
            throw TestSupportError("`\(commandLine)` (pid \(pid)) still running after \(formatSeconds(timeout)) s\n" + outputSummary())
        }
        // Grandchildren may hold the pipes open; do not wait for them forever.
        _ = state.wait(until: Date().addingTimeInterval(2)) { $0.openStreams == 0 }
        return exitStatus!
    }

    /// SIGTERM, then SIGKILL if it has not ended after `grace` seconds. Returns how it ended.
    @discardableResult
    public func terminate(grace: Double = 5) -> ProcessExit {
        signal(SIGTERM)
        if let exit = try? waitForExit(timeout: grace) { return exit }
        signal(SIGKILL)
        return (try? waitForExit(timeout: 10)) ?? .signaled(SIGKILL)
    }
}
