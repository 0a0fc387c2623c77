// A local user with a password, made for one test and deleted after it: password and keyboard-interactive
// authentication need a real account that sshd checks the password of (it reads /etc/shadow, or asks PAM).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class ThrowawayUser: @unchecked Sendable {
    public let name: String
    public let password: String

    /// Why no user can be made here, or nil when one can (root, with useradd, chpasswd and userdel).
    public static var unavailableReason: String? {
        if geteuid() != 0 { return "making a throwaway user needs root" }
        for tool in ["/usr/sbin/useradd", "/usr/sbin/chpasswd", "/usr/sbin/userdel"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing"
        }
        return nil
    }

    private static let counter = Locked(0)

    /// A new user with no home directory and /bin/sh as shell; the name is unique to this process and call.
    public init(password: String) throws {
        let n = Self.counter.withLock { value -> Int in
            value += 1
            return value
        }
        name = "tunnel-pw-\(getpid() % 100_000)-\(n)"
        self.password = password
        try ProcessRunner("/usr/sbin/useradd", ["-M", "-s", "/bin/sh", name]).runChecked(timeout: 30)
        do {
            try ProcessRunner("/usr/sbin/chpasswd").runChecked(input: Array("\(name):\(password)\n".utf8), timeout: 30)
        } catch {
            remove()
            throw error
        }
    }

    deinit { remove() }

    public func remove() {
        _ = try? ProcessRunner("/usr/sbin/userdel", [name]).run(timeout: 30)
    }
}
