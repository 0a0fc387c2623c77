// `Match localnetwork`: CIDR lists (OpenSSH's addr_match_cidr_list) checked
// against the addresses of this machine's interfaces that are up.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One `address/bits` network (a bare address is a /32 or /128).
struct CIDR: Sendable, Hashable {
    /// 4 bytes for IPv4, 16 for IPv6.
    var network: [UInt8]
    var bits: Int

    struct Failure: Error {
        var message: String
    }

    /// A comma-separated list, as OpenSSH accepts it: no empty entries, no
    /// negation, only address characters, and no host bits set past the mask.
    static func parseList(_ text: String) throws(Failure) -> [CIDR] {
        var list: [CIDR] = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !entry.isEmpty else { throw Failure(message: "empty entry in \(text.quotedForMessage)") }
            guard entry.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" || $0 == "/" }) else {
                throw Failure(message: "\(String(entry).quotedForMessage) is not an address/bits network (only addresses, no names or \"!\")")
            }
            list.append(try parse(String(entry)))
        }
        return list
    }

    static func parse(_ text: String) throws(Failure) -> CIDR {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let bytes = address(String(parts[0])) else {
            throw Failure(message: "bad network \(text.quotedForMessage)")
        }
        let maximum = bytes.count * 8
        var bits = maximum
        if parts.count == 2 {
            guard let value = Int(parts[1]), value >= 0, value <= maximum, !parts[1].isEmpty else {
                throw Failure(message: "bad mask length in \(text.quotedForMessage)")
            }
            bits = value
        }
        let cidr = CIDR(network: bytes, bits: bits)
        guard cidr.contains(bytes) && cidr.masked(bytes) == bytes else {
            throw Failure(message: "\(text.quotedForMessage) has bits set past its /\(bits) mask")
        }
        return cidr
    }

    /// The bytes of a numeric IPv4 or IPv6 address.
    static func address(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    private func masked(_ bytes: [UInt8]) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let keep = max(0, min(8, bits - index * 8))
            return keep == 0 ? 0 : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
    }

    func contains(_ bytes: [UInt8]) -> Bool {
        bytes.count == network.count && masked(bytes) == masked(network)
    }
}

enum LocalNetwork {
    /// The addresses of the interfaces that are up (getifaddrs), as bytes.
    static func interfaceAddresses() -> [[UInt8]] {
        var first: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&first) == 0 else { return [] }
        defer { freeifaddrs(first) }
        var addresses: [[UInt8]] = []
        var cursor = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, entry.pointee.ifa_flags & UInt32(IFF_UP) != 0 else { continue }
            switch Int32(sa.pointee.sa_family) {
            case AF_INET:
                var address = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                addresses.append(withUnsafeBytes(of: &address) { Array($0) })
            case AF_INET6:
                var address = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                addresses.append(withUnsafeBytes(of: &address) { Array($0) })
            default:
                continue
            }
        }
        return addresses
    }

    /// True when some interface address is in one of the networks.
    static func matches(_ networks: [CIDR], addresses: [[UInt8]] = interfaceAddresses()) -> Bool {
        addresses.contains { address in networks.contains { $0.contains(address) } }
    }
}
