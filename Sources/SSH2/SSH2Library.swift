import CLibSSH2
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// Every algorithm of each kind the linked libssh2 supports (with the crypto library it was built with), in
    /// libssh2's own order of preference. Asked once, of a session that never connects.
    public static let supportedAlgorithms: [SSHAlgorithmKind: [String]] = {
        guard initResult == 0, let session = tunnel_ssh2_session_init(nil) else { return [:] }
        defer { libssh2_session_free(session) }
        var table: [SSHAlgorithmKind: [String]] = [:]
        for kind in SSHAlgorithmKind.allCases {
            var list: UnsafeMutablePointer<UnsafePointer<CChar>?>? = nil
            let count = libssh2_session_supported_algs(session, kind.methodTypes[0], &list)
            guard count > 0, let list else { continue }
            table[kind] = (0..<Int(count)).compactMap { list[$0].map { String(cString: $0) } }
            libssh2_free(session, list)
        }
        return table
    }()

    /// libssh2 before 1.11 signs RSA user keys only with `ssh-rsa` (SHA-1), which OpenSSH 8.8+ refuses by default.
    public static var signsRSAWithSHA2: Bool { versionNumber >= 0x010b00 }

    /// The crypto library the linked libssh2 does its cryptography with, and its version where that library tells
    /// ("OpenSSL 3.0.17 1 Jul 2025"). libssh2 says which since 1.11 (`libssh2_crypto_engine`); older ones (Debian's
    /// 1.10) do not, so then the answer is whichever crypto library's version function the process has loaded: libssh2
    /// is the only part of tunnel that links one. Looked up by name (dlsym) so that this builds against any libssh2.
    public static var cryptoBackend: String {
        let engines = ["none", "OpenSSL", "libgcrypt", "mbedTLS", "WinCNG", "OS400QC3"]
        var engine: String?
        if let symbol = dlsym(defaultSymbolScope, "libssh2_crypto_engine") {
            let call = unsafeBitCast(symbol, to: (@convention(c) () -> Int32).self)
            let index = Int(call())
            engine = engines.indices.contains(index) ? engines[index] : "engine \(index)"
        }
        if engine == nil || engine == "OpenSSL", let symbol = dlsym(defaultSymbolScope, "OpenSSL_version") {
            // OpenSSL 1.1+: OpenSSL_version(OPENSSL_VERSION) is "OpenSSL 3.0.17 1 Jul 2025".
            let call = unsafeBitCast(symbol, to: (@convention(c) (Int32) -> UnsafePointer<CChar>?).self)
            if let text = call(0) { return String(cString: text) }
        }
        if engine == nil || engine == "libgcrypt", let symbol = dlsym(defaultSymbolScope, "gcry_check_version") {
            let call = unsafeBitCast(symbol, to: (@convention(c) (UnsafePointer<CChar>?) -> UnsafePointer<CChar>?).self)
            if let text = call(nil) { return "libgcrypt \(String(cString: text))" }
        }
        if engine == nil, dlsym(defaultSymbolScope, "mbedtls_version_get_string") != nil { return "mbedTLS" }
        return engine ?? "unknown"
    }
}

/// dlsym's "search every loaded library" handle (RTLD_DEFAULT, which Swift does not import as a constant).
private var defaultSymbolScope: UnsafeMutableRawPointer? {
    #if canImport(Darwin)
    return UnsafeMutableRawPointer(bitPattern: -2)
    #else
    return nil
    #endif
}
