import Foundation

/// Where the control socket lives, and how its directory is made private. The default is per user, so each user's
/// `tunnel up` has its own: `$XDG_RUNTIME_DIR/tunnel/control.sock` (a per-login tmpfs made by systemd-logind),
/// else `~/.tunnel/control.sock`.
public enum ControlSocketPath {
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return runtime + "/tunnel/control.sock"
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.tunnel/control.sock"
    }

    /// Make the socket's directory (mode 0700) if missing, and narrow it to 0700 if it is ours and wider.
    /// Thrown: a one-line reason.
    static func prepareDirectory(for socketPath: String) throws(ControlSocketError) {
        let directory = (socketPath as NSString).deletingLastPathComponent
        guard !directory.isEmpty else { return }
        var info = stat()
        if stat(directory, &info) != 0 {
            let parent = (directory as NSString).deletingLastPathComponent
            if !parent.isEmpty, !FileManager.default.fileExists(atPath: parent) {
                do {
                    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true,
                                                            attributes: [.posixPermissions: 0o700])
                } catch {
                    throw .directory(directory, reason: "cannot create \(parent)")
                }
            }
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw .directory(directory, reason: String(cString: strerror(errno)))
            }
            guard stat(directory, &info) == 0 else { throw .directory(directory, reason: String(cString: strerror(errno))) }
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw .directory(directory, reason: "not a directory") }
        guard info.st_uid == getuid() else { throw .directory(directory, reason: "owned by another user (uid \(info.st_uid))") }
        // mkdir applies the umask, and an existing directory may have been made wider: the socket's privacy rests
        // on this directory as much as on the socket's own mode.
        if info.st_mode & 0o777 != 0o700, chmod(directory, 0o700) != 0 {
            throw .directory(directory, reason: "cannot set mode 0700: \(String(cString: strerror(errno)))")
        }
    }
}

/// Why the control socket could not be set up or reached.
public enum ControlSocketError: Error, Equatable, CustomStringConvertible {
    case directory(String, reason: String)
    /// Another `tunnel up` answers on the socket.
    case alreadyRunning(path: String, pid: Int32?)
    case bind(path: String, reason: String)
    /// A client found no server.
    case notRunning(path: String)
    case connect(path: String, reason: String)
    case badReply(String)

    public var description: String {
        switch self {
        case .directory(let path, let reason): return "control socket directory \(path): \(reason)"
        case .alreadyRunning(let path, let pid):
            return "already running\(pid.map { ", pid \($0)" } ?? "") (control socket \(path)); stop it with `tunnel down`, or use --control PATH for a second instance"
        case .bind(let path, let reason): return "cannot listen on the control socket \(path): \(reason)"
        case .notRunning(let path): return "no tunnel is running (nothing listens on \(path); start one with `tunnel up`)"
        case .connect(let path, let reason): return "cannot reach the control socket \(path): \(reason)"
        case .badReply(let why): return "unexpected reply from the control socket: \(why)"
        }
    }
}
