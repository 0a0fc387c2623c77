import Foundation
import SSH2
import Testing
import TunnelTestSupport
import Digests

@Suite("Digest and Base64")
struct DigestTests {
    private func hex(_ bytes: [UInt8]) -> String { KeyFixtures.hex(bytes) }
    private func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

    // FIPS 180-4 examples (via the NIST "Example Algorithms" document).
    @Test func sha1KnownVectors() {
        #expect(hex(Digest.sha1([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex(Digest.sha1(ascii("abc"))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(Digest.sha1(ascii("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
            == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(Digest.sha1([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
            == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func sha256KnownVectors() {
        #expect(hex(Digest.sha256([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(Digest.sha256(ascii("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(Digest.sha256(ascii("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(hex(Digest.sha256([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // RFC 2202 section 3, all seven HMAC-SHA1 cases (short, long, block-sized and over-long keys).
    @Test func hmacSHA1RFC2202() {
        let cases: [(key: [UInt8], data: [UInt8], digest: String)] = [
            ([UInt8](repeating: 0x0B, count: 20), ascii("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00"),
            (ascii("Jefe"), ascii("what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            ([UInt8](repeating: 0xAA, count: 20), [UInt8](repeating: 0xDD, count: 50),
             "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
            (Array(1...25), [UInt8](repeating: 0xCD, count: 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
            ([UInt8](repeating: 0x0C, count: 20), ascii("Test With Truncation"),
             "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
            ([UInt8](repeating: 0xAA, count: 80), ascii("Test Using Larger Than Block-Size Key - Hash Key First"),
             "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
            ([UInt8](repeating: 0xAA, count: 80),
             ascii("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
             "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
        ]
        for c in cases {
            #expect(hex(Digest.hmacSHA1(key: c.key, message: c.data)) == c.digest)
        }
    }

    /// Lengths around the padding boundaries (55/56/64 bytes) are where hand-written hashes break.
    static let boundaryLengths = [1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000]

    private func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255) } }

    @Test(.enabled(if: KeyFixtures.tool("sha256sum") != nil && KeyFixtures.tool("sha1sum") != nil, "needs coreutils' sha256sum and sha1sum"))
    func matchesCoreutilsOnRandomInput() throws {
        for length in Self.boundaryLengths {
            let data = randomBytes(length)
            let sha256 = try KeyFixtures.run("sha256sum", [], input: data).prefix(64)
            let sha1 = try KeyFixtures.run("sha1sum", [], input: data).prefix(40)
            #expect(hex(Digest.sha256(data)) == sha256, "length \(length)")
            #expect(hex(Digest.sha1(data)) == sha1, "length \(length)")
        }
    }

    @Test(.enabled(if: KeyFixtures.tool("openssl") != nil, "needs the openssl command"))
    func hmacMatchesOpenSSLOnRandomInput() throws {
        for (keyLength, dataLength) in [(1, 0), (20, 55), (63, 64), (64, 65), (65, 200), (200, 1)] {
            let key = randomBytes(keyLength)
            let data = randomBytes(dataLength)
            let output = try KeyFixtures.run(
                "openssl", ["dgst", "-sha1", "-mac", "HMAC", "-macopt", "hexkey:\(hex(key))"], input: data)
            // "HMAC-SHA1(stdin)= <hex>" or "(stdin)= <hex>", depending on the OpenSSL version.
            let expected = output.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(hex(Digest.hmacSHA1(key: key, message: data)) == expected, "key \(keyLength), data \(dataLength)")
        }
    }

    // RFC 4648 section 10.
    @Test func base64Vectors() {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                       ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(ascii(plain)) == encoded)
            #expect(Base64.decode(encoded) == ascii(plain))
            let unpadded = encoded.replacingOccurrences(of: "=", with: "")
            #expect(Base64.encode(ascii(plain), padded: false) == unpadded)
            #expect(Base64.decode(unpadded) == ascii(plain))
        }
    }

    @Test func base64RejectsMalformedInput() {
        for bad in ["Zm9v!", "Z", "Zg=", "Zg===", "=Zg=", "Zm 9v", "Zm9v\n", "Z=g=", "Zm9vY"] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func base64RoundTripsRandomBytes() {
        for length in 0..<70 {
            let data = randomBytes(length)
            #expect(Base64.decode(Base64.encode(data)) == data)
            #expect(Base64.encode(data) == Data(data).base64EncodedString())
        }
    }
}
