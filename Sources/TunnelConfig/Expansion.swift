// `~`, `%x` tokens and `${VAR}` in paths and names, as ssh_config(5) TOKENS
// and ENVIRONMENT VARIABLES describe. Values are checked when the file is
// read (unknown token, unset variable: errors with file:line) and expanded
// when a host is resolved, because `%h`, `%p`, `%r` depend on the host.

enum Expansion {
    /// Tokens allowed in HostName.
    static let hostNameTokens: Set<Character> = ["%", "h"]
    /// Tokens allowed in IdentityFile, UserKnownHostsFile (and the other file keywords).
    static let fileTokens: Set<Character> = ["%", "C", "d", "h", "i", "k", "L", "l", "n", "p", "r", "u"]

    struct Failure: Error, Equatable {
        var message: String
    }

    /// Expands `%x` tokens (when `tokens` is given) and `${VAR}` (when
    /// `environment` is given) in one left-to-right pass, like OpenSSH's
    /// percent_dollar_expand: nothing produced by an expansion is expanded again.
    static func expand(
        _ text: String,
        tokens: Set<Character>?,
        value: (Character) -> String,
        environment: [String: String]?
    ) throws(Failure) -> String {
        // Most values have nothing to expand: no Character can be `%` or `$`
        // without the byte being there.
        if !text.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "$") }) { return text }
        var out = ""
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            let next = text.index(after: index)
            if c == "%", let tokens {
                guard next < text.endIndex else {
                    throw Failure(message: "a lone \"%\" at the end (write %% for a literal %)")
                }
                let token = text[next]
                guard tokens.contains(token) else {
                    let list = tokens.sorted().map { "%\($0)" }.joined(separator: " ")
                    throw Failure(message: "unknown token %\(token) (allowed here: \(list))")
                }
                out += token == "%" ? "%" : value(token)
                index = text.index(after: next)
            } else if c == "$", let environment, next < text.endIndex, text[next] == "{" {
                let nameStart = text.index(after: next)
                guard let close = text[nameStart...].firstIndex(of: "}") else {
                    throw Failure(message: "\"${\" without a closing \"}\"")
                }
                let name = String(text[nameStart..<close])
                guard !name.isEmpty, name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                    throw Failure(message: "invalid environment variable name \(name.quotedForMessage)")
                }
                guard let value = environment[name] else {
                    throw Failure(message: "environment variable ${\(name)} is not set")
                }
                out += value
                index = text.index(after: close)
            } else {
                out.append(c)
                index = next
            }
        }
        return out
    }

    /// `~` or `~/x` → home; `~user/x` → that user's home. `nil` if the user is unknown.
    static func expandTilde(_ path: String, home: String, lookup: (String) -> String? = { PasswordEntry.lookup(name: $0)?.home }) -> String? {
        guard path.hasPrefix("~") else { return path }
        let afterTilde = path.dropFirst()
        let slash = afterTilde.firstIndex(of: "/") ?? afterTilde.endIndex
        let userPart = afterTilde[..<slash]
        let remainder = afterTilde[slash...]
        let base: String
        if userPart.isEmpty {
            base = home
        } else if let other = lookup(String(userPart)) {
            base = other
        } else {
            return nil
        }
        // OpenSSH's tilde_expand turns a bare `~` into the home directory with a trailing "/".
        if remainder.isEmpty { return base.hasSuffix("/") ? base : base + "/" }
        // Avoid "//" when home is "/".
        return base.hasSuffix("/") ? base + remainder.dropFirst() : base + remainder
    }
}
