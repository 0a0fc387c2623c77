import Digests

// SHA-1 (libcrypto, through Digests), only for the `%C` token (OpenSSH defines it as the hex SHA-1 of %l%h%p%r).
enum SHA1 {
    static func hexDigest(_ text: String) -> String {
        Hex.encode(Digest.sha1(Array(text.utf8)))
    }
}
