import SSH2

/// Facts about the SSH library under the engine, for `tunnel --version` and bug reports; the layers above never
/// see libssh2 itself.
public enum EngineInfo {
    /// "libssh2 1.10.0 (crypto: OpenSSL 3.0.17 1 Jul 2025)": the library linked at run time, not the headers.
    public static var sshLibrary: String {
        "libssh2 \(SSH2Library.version) (crypto: \(SSH2Library.cryptoBackend))"
            + (AlgorithmPreference.linkedCipherNote.map { "\n  \($0)" } ?? "")
    }
}
