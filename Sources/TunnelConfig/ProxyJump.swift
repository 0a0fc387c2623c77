// `ProxyJump` values: `none`, or a comma-separated list of jump hosts, each
// `[user@]host[:port]` or `ssh://[user[;params]@]host[:port][/]`, checked the
// way OpenSSH 9.x checks them (ssh_config(5); behaviour compared with `ssh -G`).

enum ProxyJumpSyntax {
    struct Failure: Error {
        var message: String
        /// OpenSSH accepts it (a service name as the port).
        var unusable = false
    }

    /// `value` is the single argument as split from the line.
    static func parse(_ value: String) throws(Failure) -> WrittenProxyJump {
        // OpenSSH drops a `#` and what follows it, then trailing blanks.
        var text = Substring(value)
        if let hash = text.firstIndex(of: "#") { text = text[..<hash] }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        if text.lowercased() == "none" { return WrittenProxyJump(hops: [], leadingText: nil) }
        if text.isEmpty { throw Failure(message: "missing jump host") }

        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        var hops: [JumpHost] = []
        for part in parts {
            guard !part.isEmpty else {
                throw Failure(message: "empty jump host in \(String(text).quotedForMessage) (separate hosts with single commas, no spaces)")
            }
            hops.append(try hop(part))
        }
        let leading = text.lastIndex(of: ",").map { String(text[..<$0]) }
        return WrittenProxyJump(hops: hops, leadingText: leading)
    }

    private static let expected = "expected [user@]host[:port] or ssh://[user@]host[:port]"

    private static func hop(_ text: Substring) throws(Failure) -> JumpHost {
        if text.hasPrefix("ssh://") { return try uri(text.dropFirst(6), written: text) }
        func bad(_ why: String) -> Failure {
            Failure(message: "bad jump host \(String(text).quotedForMessage): \(why) (\(expected))")
        }
        var rest = text
        var user: String?
        // The user ends at the last '@'.
        if let at = rest.lastIndex(of: "@") {
            guard at > rest.startIndex else { throw bad("empty user name") }
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        let host: Substring
        var portText: Substring?
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { throw bad("missing \"]\"") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw bad("unexpected text after \"]\"") }
                portText = after.dropFirst()
            }
        } else {
            if rest.contains("/") { throw bad("\"/\" in host name") }
            if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
        }
        guard !host.isEmpty else { throw bad("missing host name") }
        return JumpHost(user: user, host: String(host), port: try port(portText, written: text))
    }

    /// After `ssh://`.
    private static func uri(_ text: Substring, written: Substring) throws(Failure) -> JumpHost {
        func bad(_ why: String) -> Failure {
            Failure(message: "bad jump host \(String(written).quotedForMessage): \(why) (\(expected))")
        }
        var rest = text
        var user: String?
        // In a URI the user ends at the first '@'; `;params` after it are ignored.
        if let at = rest.firstIndex(of: "@") {
            let info = rest[..<at]
            let name = info.prefix { $0 != ";" }
            guard !name.isEmpty else { throw bad("empty user name") }
            guard let decoded = percentDecode(name) else { throw bad("bad %-escape in the user name") }
            user = decoded
            rest = rest[rest.index(after: at)...]
        }
        var host: Substring
        var afterHost: Substring
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { throw bad("missing \"]\"") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            afterHost = rest[rest.index(after: close)...]
            guard afterHost.isEmpty || afterHost.first == ":" || afterHost.first == "/" else {
                throw bad("unexpected text after \"]\"")
            }
        } else {
            let end = rest.firstIndex { $0 == ":" || $0 == "/" } ?? rest.endIndex
            host = rest[..<end]
            afterHost = rest[end...]
        }
        // A host name proper: letters, digits, '-', '_' and single dots,
        // starting with a letter or digit (no IPv6 addresses in a URI).
        guard let first = host.first else { throw bad("missing host name") }
        guard first.isASCII && (first.isLetter || first.isNumber),
              host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }),
              !host.contains("..") else {
            throw bad("invalid host name \(String(host).quotedForMessage)")
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        var portText: Substring?
        if afterHost.first == ":" {
            let digits = afterHost.dropFirst()
            let slash = digits.firstIndex(of: "/") ?? digits.endIndex
            portText = digits[..<slash]
            afterHost = digits[slash...]
        }
        // Only an empty path is allowed.
        if !afterHost.isEmpty && afterHost != "/" { throw bad("a path is not allowed") }
        return JumpHost(user: user, host: String(host), port: try port(portText, written: written))
    }

    /// Empty or missing: no port.
    private static func port(_ text: Substring?, written: Substring) throws(Failure) -> Int? {
        guard let text, !text.isEmpty else { return nil }
        do {
            return try ForwardSyntax.parsePort(String(text), allowZero: false, what: "port")
        } catch {
            throw Failure(message: "bad jump host \(String(written).quotedForMessage): \(error.message)", unusable: error.unusable)
        }
    }

    /// `%XX` escapes and `+` for a space, as in OpenSSH's URI user names. nil when malformed or NUL.
    private static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = text.utf8[...]
        while let byte = utf8.popFirst() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = utf8.popFirst().flatMap(hexValue), let low = utf8.popFirst().flatMap(hexValue) else { return nil }
                let value = high << 4 | low
                if value == 0 { return nil }
                bytes.append(value)
            default:
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
