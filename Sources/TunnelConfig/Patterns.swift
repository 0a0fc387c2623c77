// OpenSSH's pattern language (match.c): `*` matches any run of characters,
// `?` exactly one, everything else itself. Host patterns are case-sensitive
// (OpenSSH matches the name as typed); IgnoreUnknown lists are not, and neither
// are known_hosts host fields (KnownHosts lowercases both sides first).

enum Wildcard {
    /// Whole-string match of `text` against `pattern`.
    static func matches(_ text: String, pattern: String) -> Bool {
        // Fast path, taken for nearly every host name: when both are ASCII,
        // a byte is a Unicode scalar, so matching the UTF-8 bytes in place
        // gives the same answer without copying either string.
        let ascii = text.utf8.withContiguousStorageIfAvailable { t in
            pattern.utf8.withContiguousStorageIfAvailable { p -> Bool? in
                guard t.allSatisfy({ $0 < 0x80 }), p.allSatisfy({ $0 < 0x80 }) else { return nil }
                return match(t, p, star: UInt8(ascii: "*"), any: UInt8(ascii: "?"))
            } ?? nil
        } ?? nil
        if let ascii { return ascii }
        return matchesScalars(text, pattern: pattern)
    }

    /// `matches` on Unicode scalars, for any text (what the fast path must agree with).
    static func matchesScalars(_ text: String, pattern: String) -> Bool {
        match(Array(text.unicodeScalars), Array(pattern.unicodeScalars), star: "*", any: "?")
    }

    /// The matcher, on scalars or on ASCII bytes: `star` matches any run, `any` exactly one element.
    private static func match<C: RandomAccessCollection>(_ t: C, _ p: C, star: C.Element, any: C.Element) -> Bool
    where C.Element: Equatable, C.Index == Int {
        var ti = t.startIndex, pi = p.startIndex
        // Where the last `*` was, and the text position it currently covers up to,
        // so a mismatch can retry with the star eating one more character.
        var starPattern = -1, starText = 0
        while ti < t.endIndex {
            if pi < p.endIndex, p[pi] == any || (p[pi] != star && p[pi] == t[ti]) {
                ti += 1; pi += 1
            } else if pi < p.endIndex, p[pi] == star {
                starPattern = pi; starText = ti; pi += 1
            } else if starPattern >= 0 {
                starText += 1; ti = starText; pi = starPattern + 1
            } else {
                return false
            }
        }
        while pi < p.endIndex, p[pi] == star { pi += 1 }
        return pi == p.endIndex
    }

    /// True when the string contains no pattern characters.
    static func isConcrete(_ name: String) -> Bool {
        // For an ASCII name a byte is a Character: look at the bytes (fast).
        if name.utf8.allSatisfy({ $0 < 0x80 }) {
            return !name.utf8.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }
                && name.utf8.first != UInt8(ascii: "!")
        }
        return !name.contains("*") && !name.contains("?") && !name.hasPrefix("!")
    }
}

/// One argument of a `Host` line: a pattern, possibly negated with `!`.
struct HostPattern: Sendable, Hashable {
    var pattern: String
    var negated: Bool

    init(_ argument: String) {
        negated = argument.hasPrefix("!")
        pattern = negated ? String(argument.dropFirst()) : argument
    }

    /// Not negated and without `*` or `?` (checked as scalars, as `Wildcard`
    /// matches): matches exactly the one name it spells.
    var isLiteral: Bool {
        !negated && !pattern.unicodeScalars.contains { $0 == "*" || $0 == "?" }
    }
}

extension Array where Element == HostPattern {
    /// OpenSSH semantics: the line matches when some positive pattern matches
    /// and no negated pattern does; a negated match vetoes the whole line.
    func matches(host: String) -> Bool {
        var matched = false
        for p in self where Wildcard.matches(host, pattern: p.pattern) {
            if p.negated { return false }
            matched = true
        }
        return matched
    }
}

/// A comma-separated pattern list such as IgnoreUnknown's `Use*,!UseRoaming`.
/// Compared case-insensitively, as OpenSSH does for keywords.
struct PatternList: Sendable, Hashable {
    var patterns: [HostPattern]

    init(_ text: String) {
        patterns = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { HostPattern(String($0).lowercased()) }
    }

    func matches(_ word: String) -> Bool {
        patterns.matches(host: word.lowercased())
    }
}
