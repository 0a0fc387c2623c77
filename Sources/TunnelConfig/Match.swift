// `Match` lines: their criteria, read the way OpenSSH's readconf.c
// (match_cfg_line) reads them, and checked when the file is read so a typo is
// reported with its line whatever host is resolved.

/// One criterion of a Match line, possibly negated with `!`.
struct MatchCriterion: Sendable {
    enum Kind: Sendable {
        /// Always true; must stand alone.
        case all
        /// True only in the second ("final") pass; `canonical` is the same test.
        case canonical, final
        /// Patterns (comma-separated, `!` negates one) against the target host name.
        case host(String)
        /// Patterns against the name as given on the command line.
        case originalHost(String)
        /// Patterns against the remote user so far.
        case user(String)
        /// Patterns against the local user.
        case localUser(String)
        /// CIDR list against this machine's interface addresses.
        case localNetwork([CIDR])
        /// Patterns against the `Tag` set so far.
        case tagged(String)
        /// A shell command, `%` tokens not yet expanded: true when it exits 0.
        case exec(String)
    }

    var kind: Kind
    var negated: Bool
}

/// A whole Match line.
struct MatchCondition: Sendable {
    var criteria: [MatchCriterion]
    var location: SourceLocation

    /// `final` appears: OpenSSH reads the file a second time (see `Resolver`).
    var requestsFinalPass: Bool {
        criteria.contains { if case .final = $0.kind { return true } else { return false } }
    }

    var hasExec: Bool {
        criteria.contains { if case .exec = $0.kind { return true } else { return false } }
    }
}

enum MatchSyntax {
    struct Failure: Error {
        var message: String
    }

    /// Tokens allowed in `Match exec` (ssh_config(5), TOKENS).
    static let execTokens: Set<Character> = ["%", "C", "d", "h", "i", "j", "k", "L", "l", "n", "p", "r", "u"]

    /// The text after the keyword of a Match line, split as OpenSSH's
    /// strdelim splits it: on blanks and `=`, with `"..."` quoting (no
    /// backslash escapes, no single quotes).
    static func tokens(afterKeywordOf rawLine: Substring) -> [String] {
        func isSpace(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" }
        var rest = rawLine.drop(while: isSpace)
        // The keyword, then blanks, at most one '=', blanks.
        rest = rest.drop { !isSpace($0) && $0 != "=" && $0 != "\"" }
        rest = rest.drop(while: isSpace)
        if rest.first == "=" { rest = rest.dropFirst().drop(while: isSpace) }

        var tokens: [String] = []
        while !rest.isEmpty {
            var token = ""
            var closed = true
            while let c = rest.first {
                if isSpace(c) || c == "=" { break }
                rest = rest.dropFirst()
                if c == "\"" {
                    // Everything up to the next quote, blanks included.
                    guard let close = rest.firstIndex(of: "\"") else {
                        closed = false
                        break
                    }
                    token += rest[..<close]
                    rest = rest[rest.index(after: close)...]
                    break
                }
                token.append(c)
            }
            // An unbalanced quote ends the line (strdelim returns NULL).
            if !closed { break }
            tokens.append(token)
            rest = rest.drop(while: isSpace)
            if rest.first == "=" { rest = rest.dropFirst().drop(while: isSpace) }
        }
        return tokens
    }

    /// The criteria of a Match line, or why it is a "Bad Match condition" for OpenSSH.
    static func parse(_ tokens: [String], at location: SourceLocation) throws(Failure) -> MatchCondition {
        var criteria: [MatchCriterion] = []
        var attributes = 0
        var index = 0
        while index < tokens.count, !tokens[index].isEmpty, !tokens[index].hasPrefix("#") {
            let written = tokens[index]
            index += 1
            let negated = written.hasPrefix("!")
            let name = (negated ? String(written.dropFirst()) : written).lowercased()
            if name == "all" {
                // OpenSSH's check: it must not be followed by anything, nor
                // come after more than one other criterion.
                if attributes > 1 || (index < tokens.count && !tokens[index].isEmpty && !tokens[index].hasPrefix("#")) {
                    throw Failure(message: "Match: \(written.quotedForMessage) cannot be combined with other criteria")
                }
                criteria.append(MatchCriterion(kind: .all, negated: negated))
                return MatchCondition(criteria: criteria, location: location)
            }
            attributes += 1
            if name == "canonical" || name == "final" {
                criteria.append(MatchCriterion(kind: name == "final" ? .final : .canonical, negated: negated))
                continue
            }
            guard index < tokens.count, !tokens[index].isEmpty, !tokens[index].hasPrefix("#") else {
                throw Failure(message: "Match: missing argument for \(written.quotedForMessage)")
            }
            let argument = tokens[index]
            index += 1
            let kind: MatchCriterion.Kind
            switch name {
            case "host": kind = .host(argument)
            case "originalhost": kind = .originalHost(argument)
            case "user": kind = .user(argument)
            case "localuser": kind = .localUser(argument)
            case "tagged": kind = .tagged(argument)
            case "localnetwork":
                do {
                    kind = .localNetwork(try CIDR.parseList(argument))
                } catch {
                    throw Failure(message: "Match localnetwork: \(error.message)")
                }
            case "exec":
                do {
                    _ = try Expansion.expand(argument, tokens: execTokens, value: { _ in "" }, environment: nil)
                } catch {
                    throw Failure(message: "Match exec: \(error.message)")
                }
                kind = .exec(argument)
            default:
                throw Failure(message: "Match: unknown criterion \(written.quotedForMessage) (known: all, canonical, final, exec, host, originalhost, user, localuser, localnetwork, tagged)")
            }
            criteria.append(MatchCriterion(kind: kind, negated: negated))
        }
        if attributes == 0 {
            throw Failure(message: "Match: one or more criteria required")
        }
        return MatchCondition(criteria: criteria, location: location)
    }
}

/// OpenSSH's match_pattern_list: comma-separated patterns, `!` negates one;
/// true when some positive pattern matches and no negated one does.
/// `lowercase`: compare in lower case (host names), as match_hostname does.
enum PatternListMatch {
    static func matches(_ text: String, list: String, lowercase: Bool) -> Bool {
        let subject = lowercase ? text.lowercased() : text
        let patterns = list.split(separator: ",", omittingEmptySubsequences: false)
            .map { HostPattern(lowercase ? String($0).lowercased() : String($0)) }
        return patterns.matches(host: subject)
    }
}
