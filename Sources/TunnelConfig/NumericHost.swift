// The host name OpenSSH connects to (ssh.c): a numeric address is rewritten
// in its canonical form (`1` is 0.0.0.1, `10.1` is 10.0.0.1, `0x7f.1` is
// 127.0.0.1, as inet_aton reads them) and otherwise kept as written; any
// other name is lowercased.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum NumericHost {
    /// `name` as `ssh -G` prints it in `hostname`.
    static func canonical(_ name: String, family: AddressFamily = .any) -> String {
        guard let numeric = numericForm(name, family: family) else { return name.lowercased() }
        // OpenSSH replaces the name only when the canonical form differs
        // other than in case (so `FE80::1` stays as written).
        return numeric.lowercased() == name.lowercased() ? name : numeric
    }

    /// getaddrinfo(AI_NUMERICHOST) then getnameinfo(NI_NUMERICHOST), as
    /// OpenSSH's resolve_addr; nil when `name` is not a numeric address.
    static func numericForm(_ name: String, family: AddressFamily) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST
        #if os(Linux)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        switch family {
        case .any: hints.ai_family = AF_UNSPEC
        case .inet: hints.ai_family = AF_INET
        case .inet6: hints.ai_family = AF_INET6
        }
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(first.pointee.ai_addr, first.pointee.ai_addrlen, &buffer, socklen_t(buffer.count),
                          nil, 0, NI_NUMERICHOST) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
