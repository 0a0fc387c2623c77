// `Match exec`: runs the command as OpenSSH does (execute_in_shell): through
// `$SHELL -c` (or /bin/sh when SHELL is unset), stdin and stdout on
// /dev/null, stderr shared; true when it exits 0. Unlike OpenSSH, a command
// that does not finish within a time limit is an error rather than a hang:
// a tunnel that waits forever on a config line is worse than one that says so.
//
// The config layer is synchronous; this blocks the calling thread (never
// call it on an event loop).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Whether `Match exec` commands run while resolving.
public enum MatchExecPolicy: Sendable, Hashable {
    /// Run them, killing one (and its process group) that runs longer than `timeout` seconds.
    case run(timeout: Double)
    /// Never run them: a Match line that reaches an `exec` (negated or not)
    /// does not hold (used by `tunnel check` without `--resolve`, which must
    /// have no side effects).
    case skip

    /// OpenSSH has no limit; ten seconds is far more than a `test`, `nc -z`
    /// or `ip route` check needs.
    public static let standard = MatchExecPolicy.run(timeout: 10)
}

enum MatchExec {
    struct Failure: Error {
        var message: String
    }

    /// The exit status, or why there is none.
    static func run(_ command: String, environment: [String: String], timeout: Double) throws(Failure) -> Int32 {
        let shell = environment["SHELL"].flatMap { $0.isEmpty ? nil : $0 } ?? "/bin/sh"
        guard access(shell, X_OK) == 0 else {
            throw Failure(message: "shell \(shell.quotedForMessage) (from SHELL) is not executable")
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a timeout can stop whatever the shell started.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))

        let arguments = [shell, "-c", command]
        let variables = environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let status = withCStrings(arguments) { argv in
            withCStrings(variables) { envp in
                posix_spawn(&pid, shell, &actions, &attributes, argv, envp)
            }
        }
        guard status == 0 else {
            throw Failure(message: "cannot run \(shell.quotedForMessage): \(String(cString: strerror(status)))")
        }

        // Poll: the config layer has no event loop, and a short sleep is
        // cheap next to starting a shell.
        let deadline = Date().addingTimeInterval(timeout)
        var waitStatus: Int32 = 0
        while true {
            let done = waitpid(pid, &waitStatus, WNOHANG)
            if done == pid { break }
            if done == -1 && errno != EINTR {
                throw Failure(message: "waitpid: \(String(cString: strerror(errno)))")
            }
            if Date() >= deadline {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                while waitpid(pid, &waitStatus, 0) == -1 && errno == EINTR {}
                throw Failure(message: "did not finish within \(formatted(timeout)) seconds; killed")
            }
            usleep(5_000)
        }
        // WIFEXITED / WEXITSTATUS, which do not import into Swift.
        let signal = waitStatus & 0x7F
        guard signal == 0 else { throw Failure(message: "ended by signal \(signal)") }
        return (waitStatus >> 8) & 0xFF
    }

    private static func formatted(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }

    /// A NULL-terminated C string array for the duration of `body`.
    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        return body(pointers)
    }
}

/// The outcome of each `Match exec` command (after `%` expansion) for one
/// load of a file, so resolving the same host again (for the list of tunnels,
/// then for `tunnel up`, then for `--resolve` output) runs it once, as one
/// `ssh` run would. A new load runs the commands again.
final class ExecResults: @unchecked Sendable {
    // @unchecked: every access to `results` holds `lock`.
    private let lock = NSLock()
    private var results: [String: Result<Int32, MatchExec.Failure>] = [:]

    /// The cached outcome of `command`, or `run()`'s (which is then kept).
    func outcome(of command: String, run: () -> Result<Int32, MatchExec.Failure>) -> Result<Int32, MatchExec.Failure> {
        lock.lock()
        if let known = results[command] {
            lock.unlock()
            return known
        }
        lock.unlock()
        // Run without holding the lock: a command may take seconds.
        let result = run()
        lock.lock()
        defer { lock.unlock() }
        if let known = results[command] { return known }
        results[command] = result
        return result
    }
}
