// OpenSSH's pattern language (match.c): `*` matches any run of characters,
// `?` exactly one, everything else itself. Host patterns are case-sensitive
// (OpenSSH matches the name as typed); IgnoreUnknown lists are not.

enum Wildcard {
    /// Whole-string match of `text` against `pattern`.
    static func matches(_ text: String, pattern: String) -> Bool {
        let t = Array(text.unicodeScalars)
        let p = Array(pattern.unicodeScalars)
        var ti = 0, pi = 0
        // Where the last `*` was, and the text position it currently covers up to,
        // so a mismatch can retry with the star eating one more character.
        var starPattern = -1, starText = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || (p[pi] != "*" && p[pi] == t[ti]) {
                ti += 1; pi += 1
            } else if pi < p.count, p[pi] == "*" {
                starPattern = pi; starText = ti; pi += 1
            } else if starPattern >= 0 {
                starText += 1; ti = starText; pi = starPattern + 1
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// True when the string contains no pattern characters.
    static func isConcrete(_ name: String) -> Bool {
        !name.contains("*") && !name.contains("?") && !name.hasPrefix("!")
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
