// A real OpenSSH ssh-agent for one test, on a socket in a directory of its own; stopped (and the directory
// removed) by `stop()` or when the object goes away.
import Foundation

public final class SSHAgentFixture: @unchecked Sendable {
    public let directory: String
    public let socketPath: String
    private let process: RunningProcess

    /// Why no agent can be started here, or nil when one can.
    public static let unavailableReason: String? = {
        for tool in ["/usr/bin/ssh-agent", "/usr/bin/ssh-add"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is not installed"
        }
        return nil
    }()

    public init() throws {
        // /tmp, not TMPDIR: a Unix socket path must fit in 108 bytes.
        var template = Array("/tmp/tunnel-agent.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestSupportError.errno("SSHAgentFixture: mkdtemp in /tmp")
        }
        directory = String(cString: made)
        socketPath = directory + "/agent.sock"
        // -D: stays in the foreground, so the test owns the process and ends it.
        process = try ProcessRunner("/usr/bin/ssh-agent", ["-D", "-a", socketPath]).start()
        try waitUntil(timeout: 10, "ssh-agent to create \(socketPath)") {
            FileManager.default.fileExists(atPath: socketPath) || !process.isRunning
        }
        guard process.isRunning else {
            throw TestSupportError("ssh-agent exited: \(process.outputSummary())")
        }
    }

    /// `ssh-add` of a private key file.
    public func add(_ keyPath: String) throws {
        _ = try ProcessRunner("/usr/bin/ssh-add", [keyPath], extraEnvironment: ["SSH_AUTH_SOCK": socketPath]).runChecked(timeout: 20)
    }

    /// The agent's keys as `ssh-add -l` lists them (fingerprints).
    public func list() throws -> String {
        try ProcessRunner("/usr/bin/ssh-add", ["-l"], extraEnvironment: ["SSH_AUTH_SOCK": socketPath]).run(timeout: 20).stdoutText
    }

    public func stop() {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }
}
