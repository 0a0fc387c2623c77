import CLibSSH2

/// Process-wide libssh2 facts: one-time initialisation and the linked version.
public enum SSH2Library {
    /// `libssh2_init` must run once before any session; a `static let` gives thread-safe once-only semantics.
    private static let initResult: Int32 = libssh2_init(0)

    static func ensureInitialised() throws(SSH2Error) {
        if initResult != 0 {
            throw SSH2Error(code: initResult, message: "libssh2_init failed", operation: "initialise libssh2")
        }
    }

    /// The version of the libssh2 actually linked at run time (may differ from the headers we built against).
    public static var version: String {
        guard let cString = libssh2_version(0) else { return "unknown" }
        return String(cString: cString)
    }

    /// The linked version as a number, 0x010a00 for 1.10.0.
    public static var versionNumber: Int {
        let parts = version.split(separator: ".").compactMap { Int($0.prefix { $0.isNumber }) }
        guard parts.count >= 2 else { return Int(tunnel_ssh2_version_num()) }
        return (parts[0] << 16) | (parts[1] << 8) | (parts.count > 2 ? parts[2] : 0)
    }

    /// libssh2 before 1.11 signs RSA user keys only with `ssh-rsa` (SHA-1), which OpenSSH 8.8+ refuses by default.
    public static var signsRSAWithSHA2: Bool { versionNumber >= 0x010b00 }
}
