// Hashes needed to read and write OpenSSH files without a crypto library:
// SHA-256 for key fingerprints, HMAC-SHA1 for hashed known_hosts names (SHA-1 only as HMAC's hash).
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
        var h: [UInt32] = [
            0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19,
        ]
        var w = [UInt32](repeating: 0, count: 64)
        forEachBlock(of: data) { block in
            for t in 0..<16 { w[t] = bigEndianWord(block, at: t * 4) }
            for t in 16..<64 {
                let s0 = rotateRight(w[t - 15], 7) ^ rotateRight(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotateRight(w[t - 2], 17) ^ rotateRight(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for t in 0..<64 {
                let bigSigma1 = rotateRight(e, 6) ^ rotateRight(e, 11) ^ rotateRight(e, 25)
                let choose = (e & f) ^ (~e & g)
                let t1 = hh &+ bigSigma1 &+ choose &+ sha256RoundConstants[t] &+ w[t]
                let bigSigma0 = rotateRight(a, 2) ^ rotateRight(a, 13) ^ rotateRight(a, 22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = bigSigma0 &+ majority
                hh = g
                g = f
                f = e
                e = d &+ t1
                d = c
                c = b
                b = a
                a = t1 &+ t2
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d
            h[4] = h[4] &+ e; h[5] = h[5] &+ f; h[6] = h[6] &+ g; h[7] = h[7] &+ hh
        }
        return bytes(of: h)
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

    // MARK: - Shared by SHA-1 and SHA-256 (both are Merkle-Damgard over 64-byte blocks, big-endian)

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
    private static func rotateRight(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    /// First 32 bits of the fractional parts of the cube roots of the first 64 primes (FIPS 180-4, 4.2.2).
    private static let sha256RoundConstants: [UInt32] = [
        0x428A_2F98, 0x7137_4491, 0xB5C0_FBCF, 0xE9B5_DBA5, 0x3956_C25B, 0x59F1_11F1, 0x923F_82A4, 0xAB1C_5ED5,
        0xD807_AA98, 0x1283_5B01, 0x2431_85BE, 0x550C_7DC3, 0x72BE_5D74, 0x80DE_B1FE, 0x9BDC_06A7, 0xC19B_F174,
        0xE49B_69C1, 0xEFBE_4786, 0x0FC1_9DC6, 0x240C_A1CC, 0x2DE9_2C6F, 0x4A74_84AA, 0x5CB0_A9DC, 0x76F9_88DA,
        0x983E_5152, 0xA831_C66D, 0xB003_27C8, 0xBF59_7FC7, 0xC6E0_0BF3, 0xD5A7_9147, 0x06CA_6351, 0x1429_2967,
        0x27B7_0A85, 0x2E1B_2138, 0x4D2C_6DFC, 0x5338_0D13, 0x650A_7354, 0x766A_0ABB, 0x81C2_C92E, 0x9272_2C85,
        0xA2BF_E8A1, 0xA81A_664B, 0xC24B_8B70, 0xC76C_51A3, 0xD192_E819, 0xD699_0624, 0xF40E_3585, 0x106A_A070,
        0x19A4_C116, 0x1E37_6C08, 0x2748_774C, 0x34B0_BCB5, 0x391C_0CB3, 0x4ED8_AA4A, 0x5B9C_CA4F, 0x682E_6FF3,
        0x748F_82EE, 0x78A5_636F, 0x84C8_7814, 0x8CC7_0208, 0x90BE_FFFA, 0xA450_6CEB, 0xBEF9_A3F7, 0xC671_78F2,
    ]
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

/// Reads the SSH wire encoding (RFC 4251 section 5: uint32 big-endian, length-prefixed strings) from a byte
/// array without ever trapping: every read checks the remaining length, so truncated or hostile input just
/// yields nil. Shared by known_hosts (key blob type) and private key inspection.
struct SSHWireReader {
    private let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func readBytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= remaining else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func readUInt32() -> UInt32? {
        guard let b = readBytes(4) else { return nil }
        return UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
    }

    mutating func readString() -> [UInt8]? {
        let start = offset
        guard let length = readUInt32(), let value = readBytes(Int(length)) else {
            offset = start
            return nil
        }
        return value
    }

    /// A string that must be printable ASCII (algorithm and cipher names); nil otherwise.
    mutating func readName() -> String? {
        guard let raw = readString(), raw.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: raw, as: UTF8.self)
    }

    /// The key type name that starts every SSH public key blob (RFC 4253 section 6.6), if well formed.
    static func keyType(ofBlob blob: [UInt8]) -> String? {
        var reader = SSHWireReader(blob)
        guard let name = reader.readName(), !name.isEmpty else { return nil }
        return name
    }
}
