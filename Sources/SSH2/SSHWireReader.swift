/// Reads the SSH wire encoding (RFC 4251 section 5: uint32 big-endian, length-prefixed strings) from a byte
/// array without ever trapping: every read checks the remaining length, so truncated or hostile input just
/// yields nil. Used by private key inspection (known_hosts, in TunnelConfig, reads only a blob's type name).
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
