// The facts about the local user and machine that ssh_config expansion needs
// (`~`, `%d`, `%u`, `%l`, `${VAR}`, the default User). Passed in rather than
// read from globals so tests can pin them.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public struct ConfigContext: Sendable {
    /// `~` and `%d`. OpenSSH uses the password database, not `$HOME`.
    public var homeDirectory: String
    /// The default `User` and `%u`.
    public var userName: String
    /// For `${VAR}` expansion.
    public var environment: [String: String]
    /// `%l` (and `%L`, its part before the first dot).
    public var localHostName: String
    /// `%i`.
    public var userID: Int

    public init(
        homeDirectory: String,
        userName: String,
        environment: [String: String] = [:],
        localHostName: String = "localhost",
        userID: Int = 0
    ) {
        self.homeDirectory = homeDirectory
        self.userName = userName
        self.environment = environment
        self.localHostName = localHostName
        self.userID = userID
    }

    /// The user running this process, as OpenSSH would see them.
    public static var current: ConfigContext {
        let environment = ProcessInfo.processInfo.environment
        let uid = getuid()
        var home = environment["HOME"] ?? NSHomeDirectory()
        var name = environment["USER"] ?? environment["LOGNAME"] ?? ""
        if let entry = PasswordEntry.lookup(uid: uid) {
            home = entry.home
            name = entry.name
        }
        var buffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "localhost"
        return ConfigContext(homeDirectory: home, userName: name, environment: environment,
                             localHostName: host, userID: Int(uid))
    }
}

/// A password-database lookup (getpwuid_r / getpwnam_r, the thread-safe forms).
struct PasswordEntry {
    var name: String
    var home: String

    static func lookup(uid: uid_t) -> PasswordEntry? {
        withEntry { pwd, buf, size, result in getpwuid_r(uid, pwd, buf, size, result) }
    }

    static func lookup(name: String) -> PasswordEntry? {
        withEntry { pwd, buf, size, result in getpwnam_r(name, pwd, buf, size, result) }
    }

    private static func withEntry(
        _ call: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>, Int,
                 UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32
    ) -> PasswordEntry? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        // The entry's strings point into `buffer`: copy them out before it goes.
        return buffer.withUnsafeMutableBufferPointer { buf -> PasswordEntry? in
            let status = call(&pwd, buf.baseAddress!, buf.count, &result)
            guard status == 0, result != nil, let namePtr = pwd.pw_name, let dirPtr = pwd.pw_dir else { return nil }
            return PasswordEntry(name: String(cString: namePtr), home: String(cString: dirPtr))
        }
    }
}
