import TunnelEngine

/// What `tunnel --version` prints: this release, then the libraries it runs on (they decide which ciphers and key
/// types work, so a bug report needs them).
public enum VersionInfo {
    public static let release = "0.1.0"

    /// "tunnel 0.1.0\nlibssh2 1.10.0 (crypto: OpenSSL 3.0.17 1 Jul 2025)".
    public static var text: String {
        "tunnel \(release)\n\(EngineInfo.sshLibrary)"
    }
}
