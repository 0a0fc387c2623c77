// The bare library as a baseline: the same libssh2 tunnel links, in blocking mode on a plain socket, one
// direct-tcpip channel read in a loop. What tunnel adds or loses around libssh2 shows against this, in the same run.
import CLibSSH2
import Digests
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

enum PlainLibSSH2Download {
    /// libssh2_init once per process; libssh2 1.10 is not safe to initialise concurrently.
    private static let initialized: Bool = libssh2_init(0) == 0

    /// Every blocking libssh2 call gives up after this long (libssh2_session_set_timeout).
    static let callTimeoutMilliseconds: Int = 30_000

    /// Downloads `bytes` from a `BulkServer` at `targetPort` through one channel and returns MB/s (10^6 B/s),
    /// timed from the request byte to EOF like `BulkTransfer`. `via`: reach the sshd through this relay.
    static func measure(sshd: SSHDFixture, targetPort: Int, bytes: Int, via relay: TCPTestServer? = nil) throws -> Double {
        guard initialized else { throw BenchError("libssh2_init failed") }
        let socket = try BlockingSocket.connect(port: relay?.port ?? sshd.port, timeout: 30)
        defer { socket.close() }
        guard let session = tunnel_ssh2_session_init(nil) else { throw BenchError("libssh2_session_init failed") }
        defer { libssh2_session_free(session) }
        libssh2_session_set_blocking(session, 1)
        libssh2_session_set_timeout(session, callTimeoutMilliseconds)
        func check(_ rc: Int32, _ what: String) throws {
            guard rc >= 0 else { throw BenchError("libssh2 \(what): \(lastError(session)) (\(rc))") }
        }
        // The algorithms tunnel gets from libssh2 1.10 (its best), named so the row means the same thing elsewhere.
        try check(libssh2_session_method_pref(session, LIBSSH2_METHOD_CRYPT_CS, "aes128-ctr"), "method_pref")
        try check(libssh2_session_method_pref(session, LIBSSH2_METHOD_CRYPT_SC, "aes128-ctr"), "method_pref")
        try check(libssh2_session_method_pref(session, LIBSSH2_METHOD_MAC_CS, "hmac-sha2-256"), "method_pref")
        try check(libssh2_session_method_pref(session, LIBSSH2_METHOD_MAC_SC, "hmac-sha2-256"), "method_pref")
        try check(libssh2_session_handshake(session, socket.fd), "handshake with \(sshd.hostAndPort)")
        defer { _ = tunnel_ssh2_disconnect(session, "bench done") }
        try checkHostKey(session, sshd)
        let user = sshd.user
        try check(tunnel_ssh2_userauth_publickey_fromfile(session, user, UInt32(user.utf8.count),
                                                          sshd.clientKeyPath + ".pub", sshd.clientKeyPath, ""),
                  "public-key authentication as \(user)")
        guard let channel = tunnel_ssh2_direct_tcpip(session, loopback, Int32(targetPort), loopback, 22) else {
            throw BenchError("libssh2 direct-tcpip to \(loopback):\(targetPort): \(lastError(session))")
        }
        defer { libssh2_channel_free(channel) }

        let start = monotonicNanoseconds()
        let written = tunnel_ssh2_channel_write(channel, "D", 1)
        guard written == 1 else { throw BenchError("libssh2 channel write: \(lastError(session)) (\(written))") }
        var buffer = [CChar](repeating: 0, count: 1 << 20)
        var total = 0
        // Bounded by size (the server sends exactly `bytes`) and, per call, by the session timeout.
        while total <= bytes {
            let n = buffer.withUnsafeMutableBufferPointer { tunnel_ssh2_channel_read(channel, $0.baseAddress, $0.count) }
            if n == 0 { break }
            guard n > 0 else { throw BenchError("libssh2 channel read after \(total) bytes: \(lastError(session)) (\(n))") }
            total += n
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        _ = libssh2_channel_close(channel)
        guard total == bytes else { throw BenchError("plain libssh2 download moved \(total) of \(bytes) bytes") }
        return Double(bytes) / seconds / 1_000_000
    }

    /// Refuses any server but the fixture's: compares the SHA-256 of the host key with its fingerprint.
    private static func checkHostKey(_ session: OpaquePointer, _ sshd: SSHDFixture) throws {
        guard let hash = libssh2_hostkey_hash(session, LIBSSH2_HOSTKEY_HASH_SHA256) else {
            throw BenchError("libssh2 gave no SHA-256 host key hash")
        }
        let bytes = hash.withMemoryRebound(to: UInt8.self, capacity: 32) { Array(UnsafeBufferPointer(start: $0, count: 32)) }
        let fingerprint = "SHA256:" + Base64.encode(bytes, padded: false)
        guard fingerprint == sshd.hostKeyFingerprint else {
            throw BenchError("host key \(fingerprint) is not the test server's \(sshd.hostKeyFingerprint)")
        }
    }

    private static func lastError(_ session: OpaquePointer) -> String {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        _ = libssh2_session_last_error(session, &message, &length, 0)
        return message.map { String(cString: $0) } ?? "unknown error"
    }
}
