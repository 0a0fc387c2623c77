// Deterministic test payloads and their checksums (SHA-256 from the Digests module).
import Digests

/// Deterministic payloads and digests for tests.
public enum TestData {
    /// `count` pseudo-random bytes from `seed` (splitmix64, 8 little-endian bytes per step).
    /// Equal to what a `PseudoRandomStream(seed:)` produces in its first `count` bytes.
    public static func pseudoRandom(count: Int, seed: UInt64) -> [UInt8] {
        var stream = PseudoRandomStream(seed: seed)
        return stream.next(count)
    }

    /// Lower-case hex SHA-256 of `bytes`.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        var hash = SHA256()
        hash.update(bytes)
        return hash.finalizeHex()
    }

    /// Lower-case hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }
}

/// SplitMix64: a small generator with the same sequence on every platform, so a failure found with a seed can be
/// reproduced. The one generator the tests, the byte stream below and the fuzz-like tests share.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<n.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    /// True `percent` times in a hundred.
    public mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

/// An endless deterministic byte stream (splitmix64); pull it in any chunk sizes, the bytes are the same.
public struct PseudoRandomStream: Sendable {
    private var generator: SplitMix64
    private var word: UInt64 = 0
    private var wordBytesLeft = 0

    public init(seed: UInt64) { generator = SplitMix64(state: seed) }

    private mutating func nextWord() -> UInt64 { generator.next() }

    /// Fills `buffer` with the next `buffer.count` bytes.
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var i = 0
        let n = buffer.count
        while i < n && wordBytesLeft > 0 {
            buffer[i] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            wordBytesLeft -= 1
            i += 1
        }
        while n - i >= 8 {
            buffer.storeBytes(of: nextWord().littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        if i < n {
            word = nextWord()
            wordBytesLeft = 8
            while i < n {
                buffer[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                wordBytesLeft -= 1
                i += 1
            }
        }
    }

    /// The next `count` bytes.
    public mutating func next(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: max(count, 0)) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = max(count, 0)
        }
    }
}
