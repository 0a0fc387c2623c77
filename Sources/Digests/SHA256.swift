// Streaming SHA-256 through libcrypto's EVP interface: test transfers of hundreds of MB are checksummed as they
// pass, without holding them.

internal import CLibCrypto

/// Streaming SHA-256: `update` as often as needed, then `finalize` once. A value type: a copy hashes on
/// independently (the libcrypto context is copied on the first write after a copy).
public struct SHA256: Sendable {
    private var context: Context

    public init() {
        context = Context()
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if !isKnownUniquelyReferenced(&context) { context = context.copy() }
        precondition(EVP_DigestUpdate(context.pointer, base, bytes.count) == 1, "libcrypto EVP_DigestUpdate failed")
    }

    /// The 32-byte digest. Call once.
    public mutating func finalize() -> [UInt8] {
        if !isKnownUniquelyReferenced(&context) { context = context.copy() }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context.pointer, $0.baseAddress, &length) }
        precondition(ok == 1, "libcrypto EVP_DigestFinal_ex failed")
        return Array(out.prefix(Int(length)))
    }

    public mutating func finalizeHex() -> String { Hex.encode(finalize()) }

    /// Owns one EVP_MD_CTX. Only ever mutated through a uniquely referenced SHA256 value (copy on write), so
    /// sharing it between threads is safe.
    private final class Context: @unchecked Sendable {
        let pointer: OpaquePointer

        init() {
            guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
                preconditionFailure("libcrypto cannot start a SHA-256 digest")
            }
            pointer = context
        }

        private init(copying other: OpaquePointer) {
            guard let context = EVP_MD_CTX_new(), EVP_MD_CTX_copy_ex(context, other) == 1 else {
                preconditionFailure("libcrypto cannot copy a SHA-256 digest")
            }
            pointer = context
        }

        func copy() -> Context { Context(copying: pointer) }

        deinit { EVP_MD_CTX_free(pointer) }
    }
}
