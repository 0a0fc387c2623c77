// Hashes needed to read and write OpenSSH files: SHA-256 for key fingerprints and test checksums, HMAC-SHA1 for
// hashed known_hosts names, SHA-1 for the `%C` config token. One module, so every layer (SSH2, TunnelConfig, test
// support) shares one thin wrapper over OpenSSL's libcrypto (module CLibCrypto), which libssh2 already loads:
// no cryptography is written here, only the calls into the well-kept implementation.

internal import CLibCrypto

/// Message digests and HMAC on byte arrays, computed by libcrypto.
public enum Digest {
    /// SHA-1 (20 bytes). Only for HMAC-SHA1 and interop; not for new security decisions.
    public static func sha1(_ data: [UInt8]) -> [UInt8] {
        oneShot(EVP_sha1(), data)
    }

    /// SHA-256 (32 bytes), as used by OpenSSH fingerprints.
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        oneShot(EVP_sha256(), data)
    }

    /// HMAC-SHA1 (RFC 2104): what OpenSSH uses to hash host names in known_hosts.
    public static func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        // HMAC() (not deprecated in OpenSSL 3, unlike HMAC_CTX) takes any key length. An empty array may have no
        // address, and a null key means "no key" to libcrypto, so empty inputs point at a real (unread) byte.
        let empty: [UInt8] = [0]
        let result = (key.isEmpty ? empty : key).withUnsafeBufferPointer { keyBytes in
            (message.isEmpty ? empty : message).withUnsafeBufferPointer { messageBytes in
                out.withUnsafeMutableBufferPointer { outBytes in
                    HMAC(EVP_sha1(), keyBytes.baseAddress, Int32(key.count), messageBytes.baseAddress, message.count,
                         outBytes.baseAddress, &length)
                }
            }
        }
        // Fails only when libcrypto cannot allocate or lacks SHA-1: nothing sensible can go on from there.
        precondition(result != nil, "libcrypto HMAC-SHA1 failed")
        return Array(out.prefix(Int(length)))
    }

    private static func oneShot(_ md: OpaquePointer?, _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let empty: [UInt8] = [0]
        let ok = (data.isEmpty ? empty : data).withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                EVP_Digest(input.baseAddress, data.count, output.baseAddress, &length, md, nil)
            }
        }
        precondition(ok == 1, "libcrypto EVP_Digest failed")
        return Array(out.prefix(Int(length)))
    }
}

/// Overwrites memory that held a secret (a passphrase, a password) in a way the optimizer may not remove
/// (OPENSSL_cleanse), so the bytes do not linger in freed memory or a core dump.
public enum SecureMemory {
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        OPENSSL_cleanse(base, buffer.count)
    }

    /// Wipes the array's bytes in place, then empties it.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { wipe($0) }
        bytes.removeAll()
    }
}
