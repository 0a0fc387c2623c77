// Hashes needed to read and write OpenSSH files without a crypto library: SHA-256 for key fingerprints and
// test checksums, HMAC-SHA1 for hashed known_hosts names, SHA-1 for HMAC and the `%C` config token.
// One module, so every layer (SSH2, TunnelConfig, test support) shares one implementation.
// Written from FIPS 180-4 and RFC 2104. Inputs here are a few hundred bytes, so clarity beats speed.

/// Message digests (FIPS 180-4) and HMAC (RFC 2104), on byte arrays.
public enum Digest {
    /// SHA-1 (20 bytes). Only for HMAC-SHA1 and interop; not for new security decisions.
    public static func sha1(_ data: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var w = [UInt32](repeating: 0, count: 80)
        forEachBlock(of: data) { block in
            for t in 0..<16 { w[t] = bigEndianWord(block, at: t * 4) }
            for t in 16..<80 { w[t] = rotateLeft(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1) }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for t in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch t {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
                default: f = b ^ c ^ d; k = 0xCA62_C1D6
                }
                let temp = rotateLeft(a, 5) &+ f &+ e &+ k &+ w[t]
                e = d
                d = c
                c = rotateLeft(b, 30)
                b = a
                a = temp
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d; h[4] = h[4] &+ e
        }
        return bytes(of: h)
    }

    /// SHA-256 (32 bytes), as used by OpenSSH fingerprints.
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data)
        return hasher.finalize()
    }

    /// HMAC-SHA1 (RFC 2104): what OpenSSH uses to hash host names in known_hosts.
    public static func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        let blockSize = 64
        // Keys longer than a block are hashed first; shorter ones are zero-padded (RFC 2104 section 2).
        var blockKey = key.count > blockSize ? sha1(key) : key
        blockKey += [UInt8](repeating: 0, count: blockSize - blockKey.count)
        let inner = sha1(blockKey.map { $0 ^ 0x36 } + message)
        return sha1(blockKey.map { $0 ^ 0x5C } + inner)
    }

    // MARK: - SHA-1 helpers (Merkle-Damgard over 64-byte blocks, big-endian)

    /// Pads the message (0x80, zeros, 64-bit bit length) and hands each 64-byte block to `body`.
    private static func forEachBlock(of data: [UInt8], _ body: ([UInt8]) -> Void) {
        var message = data
        let bitLength = UInt64(data.count) &* 8
        message.append(0x80)
        while message.count % 64 != 56 { message.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) {
            message.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        var start = 0
        while start < message.count {
            body(Array(message[start..<start + 64]))
            start += 64
        }
    }

    private static func bigEndianWord(_ bytes: [UInt8], at i: Int) -> UInt32 {
        UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
    }

    private static func bytes(of words: [UInt32]) -> [UInt8] {
        words.flatMap { word in
            [UInt8(truncatingIfNeeded: word >> 24), UInt8(truncatingIfNeeded: word >> 16),
             UInt8(truncatingIfNeeded: word >> 8), UInt8(truncatingIfNeeded: word)]
        }
    }

    private static func rotateLeft(_ x: UInt32, _ n: UInt32) -> UInt32 { (x << n) | (x >> (32 - n)) }
}

/// Standard base64 (RFC 4648 section 4), strict on input: OpenSSH files are machine-written, so anything
/// outside the alphabet means the data is not what we think it is.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Encodes `bytes`; `padded: false` drops the trailing "=" as `ssh-keygen -l` does for fingerprints.
    public static func encode(_ bytes: [UInt8], padded: Bool = true) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let remaining = bytes.count - i
            let b0 = UInt32(bytes[i])
            let b1 = remaining > 1 ? UInt32(bytes[i + 1]) : 0
            let b2 = remaining > 2 ? UInt32(bytes[i + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 0x3F)])
            out.append(alphabet[Int(group >> 12 & 0x3F)])
            if remaining > 1 { out.append(alphabet[Int(group >> 6 & 0x3F)]) } else if padded { out.append(UInt8(ascii: "=")) }
            if remaining > 2 { out.append(alphabet[Int(group & 0x3F)]) } else if padded { out.append(UInt8(ascii: "=")) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes standard base64, padded or not. Returns nil for characters outside the alphabet
    /// (whitespace included: callers strip line breaks), misplaced "=", or an impossible length.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var chars = Array(text.utf8)
        // Up to two "=" may end the text, and only when they complete a 4-character group.
        var padding = 0
        while padding < 2, chars.last == UInt8(ascii: "=") {
            chars.removeLast()
            padding += 1
        }
        if padding > 0, (chars.count + padding) % 4 != 0 { return nil }
        if chars.count % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for c in chars {
            guard let value = sextet(c) else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }

    private static func sextet(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
