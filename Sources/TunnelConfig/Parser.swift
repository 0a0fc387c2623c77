// Turns config text into statements, collecting every problem with its
// file:line. Validation happens here, for every line, whether or not its
// block matches any host: OpenSSH also rejects a bad line in a block that
// does not apply, and a typo should not wait for the day its host is used.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

struct Parser {
    /// OpenSSH's READCONF_MAX_DEPTH.
    static let maximumIncludeDepth = 16

    let context: ConfigContext
    var diagnostics = DiagnosticSink()
    /// Concrete names from Host lines, first occurrence first.
    var concreteNames: [(name: String, location: SourceLocation)] = []
    private var seenConcreteNames: Set<String> = []
    /// IgnoreUnknown lists seen so far, in any block (see `unknownKeyword`).
    private var ignoreUnknown: [PatternList] = []
    /// Files being parsed, outermost first, to catch an Include cycle early.
    private var includeStack: [String] = []
    /// Some file has a Match line (settings depend on more than the name).
    var hasMatch = false
    /// Some Match line says `final`: OpenSSH reads the file twice.
    var wantsFinalPass = false
    /// Where `Match exec` lines are, first one first.
    var execLocations: [SourceLocation] = []

    init(context: ConfigContext) {
        self.context = context
    }

    // MARK: Files and lines

    mutating func parse(text: String, file: String, identity: String, depth: Int) -> [Statement] {
        includeStack.append(identity)
        defer { includeStack.removeLast() }
        var statements: [Statement] = []
        // Split on "\n" and on "\r\n" (which Swift treats as one Character).
        // Scanning the UTF-8 bytes finds the same lines as splitting the
        // Characters: "\n" is always a Character boundary on both sides, and a
        // "\r" right before it always belongs to the "\r\n" Character.
        let utf8 = text.utf8
        var lineStart = utf8.startIndex
        var lineNumber = 0
        while true {
            let newline = utf8[lineStart...].firstIndex(of: UInt8(ascii: "\n"))
            var lineEnd = newline ?? utf8.endIndex
            if newline != nil, lineEnd > lineStart, utf8[utf8.index(before: lineEnd)] == UInt8(ascii: "\r") {
                lineEnd = utf8.index(before: lineEnd)
            }
            lineNumber += 1
            let location = SourceLocation(file: file, line: lineNumber)
            if let statement = parseLine(text[lineStart..<lineEnd], at: location, depth: depth) {
                statements.append(statement)
            }
            guard let newline else { break }
            lineStart = utf8.index(after: newline)
        }
        return statements
    }

    private mutating func parseLine(_ rawLine: Substring, at location: SourceLocation, depth: Int) -> Statement? {
        let line: SplitLine
        do {
            guard let split = try LineSplitter.split(rawLine) else { return nil }
            line = split
        } catch {
            switch error {
            case .missingArgument(let keyword):
                if isKnown(keyword) {
                    fail("\(displayName(keyword)): missing argument", at: location)
                } else {
                    unknownKeyword(keyword, at: location)
                }
            case .unbalancedQuotes:
                fail("unbalanced quotes", at: location)
            case .quoteInKeyword:
                fail("unexpected quote in keyword", at: location)
            }
            return nil
        }

        let lowered = line.keyword.lowercased()
        guard let keyword = Keyword.byLowercasedName[lowered] else {
            if let name = KnownOpenSSHKeywords.ignored[lowered] {
                // Kept whole (not split into words): a host with one is not brought up, and a ProxyJump
                // after it does not apply (OpenSSH takes the first of the two).
                if lowered == "proxycommand" { return proxyCommand(rawLine, at: location) }
                diagnostics.warnOnce(key: lowered, "\(name) is an OpenSSH option tunnel does not use; ignored", at: location)
                // Ignored too (tunnel does no DNS canonicalisation), but when on,
                // OpenSSH reads the file a second time, as for `Match final`.
                if lowered == "canonicalizehostname" { return canonicalizeHostname(line.arguments, at: location) }
            } else {
                unknownKeyword(line.keyword, at: location)
            }
            return nil
        }
        // A quoted empty value, or a line whose value is only a comment.
        if line.arguments.isEmpty || (line.arguments.count == 1 && line.arguments[0].isEmpty) {
            fail("\(keyword.name): missing argument", at: location)
            return nil
        }
        if keyword == .match { return match(rawLine, at: location) }
        if keyword.isOwn, !ignoreUnknown.contains(where: { $0.matches(keyword.name) }) {
            // Fine for tunnel, but `ssh -F` on this file would stop here.
            diagnostics.warnOnce(key: "own-keyword", "\(keyword.name) is tunnel's own keyword, which ssh rejects: put `\(Keyword.ownKeywordsIgnoreLine)` before the first Host line so `ssh -F` accepts this file", at: location)
        }
        guard let directive = directive(for: keyword, line.arguments, at: location, depth: depth) else { return nil }
        return Statement(location: location, directive: directive)
    }

    // MARK: Keywords

    private mutating func directive(for keyword: Keyword, _ args: [String], at location: SourceLocation, depth: Int) -> Directive? {
        /// Reports `message` as "Keyword: message" and yields nil.
        func bad(_ message: String) -> Directive? {
            fail("\(keyword.name): \(message)", at: location)
            return nil
        }
        /// A line OpenSSH accepts but tunnel cannot act on: kept, to make the
        /// hosts that use it unusable (errors stay with the hosts they concern).
        func unusable(_ message: String) -> Directive? {
            .setting(.unusable(ConfigError(location: location, message: "\(keyword.name): \(message)")))
        }
        /// The single argument of a one-value keyword, or nil after reporting.
        func single() -> String? {
            if args.count > 1 {
                fail("\(keyword.name): takes one argument, found \(args.count): \(args.joined(separator: " ").quotedForMessage)", at: location)
                return nil
            }
            return args[0]
        }

        switch keyword {
        case .host:
            if args.contains(where: \.isEmpty) { return bad("empty pattern") }
            for name in args where Wildcard.isConcrete(name) && seenConcreteNames.insert(name).inserted {
                concreteNames.append((name, location))
            }
            return .host(args.map(HostPattern.init))

        case .match:
            return nil  // read from the raw line, in `match(_:at:)`

        case .include:
            return .include(include(args, at: location, depth: depth))

        case .hostName:
            guard let value = single() else { return nil }
            // OpenSSH expands HostName only for the host that uses it.
            if let problem = checkExpansion(value, tokens: Expansion.hostNameTokens, environment: false) {
                return unusable(problem)
            }
            return .setting(.hostName(value))

        case .port:
            guard let value = single() else { return nil }
            do {
                return .setting(.port(try ForwardSyntax.parsePort(value, allowZero: false, what: "port")))
            } catch {
                return error.unusable ? unusable(error.message) : bad(error.message)
            }

        case .user:
            guard let value = single() else { return nil }
            return .setting(.user(value))

        case .identityFile:
            guard let value = single() else { return nil }
            if let problem = checkPath(value) { return unusable(problem) }
            return .setting(.identityFile(value))

        case .userKnownHostsFile:
            if args.contains(where: \.isEmpty) { return bad("empty file name") }
            if args.contains(where: { $0.lowercased() == "none" }) {
                if args.count > 1 { return bad("\"none\" must appear alone") }
                return .setting(.userKnownHostsFiles([]))
            }
            for path in args {
                if let problem = checkPath(path) { return unusable(problem) }
            }
            return .setting(.userKnownHostsFiles(args))

        case .strictHostKeyChecking:
            guard let value = single() else { return nil }
            guard let mode = StrictHostKeyChecking(configValue: value) else {
                return bad("bad value \(value.quotedForMessage) (expected yes, no, ask, accept-new or off)")
            }
            return .setting(.strictHostKeyChecking(mode))

        case .localForward:
            do {
                return .setting(.localForward(try ForwardSyntax.parseLocal(args, environment: context.environment, at: location)))
            } catch {
                return error.unusable ? unusable(error.message) : bad(error.message)
            }

        case .remoteForward:
            do {
                return .setting(.remoteForward(try ForwardSyntax.parseRemote(args, environment: context.environment, at: location)))
            } catch {
                return error.unusable ? unusable(error.message) : bad(error.message)
            }

        case .dynamicForward:
            do {
                return .setting(.dynamicForward(try ForwardSyntax.parseDynamic(args, environment: context.environment, at: location)))
            } catch {
                return error.unusable ? unusable(error.message) : bad(error.message)
            }

        case .serverAliveInterval, .connectTimeout:
            guard let value = single() else { return nil }
            let seconds: Int?
            if value.lowercased() == "none" {
                seconds = nil
            } else if let parsed = ValueSyntax.seconds(value) {
                seconds = parsed
            } else {
                return bad("bad time value \(value.quotedForMessage) (seconds, or e.g. 30s, 5m, 1h30m; or none)")
            }
            return .setting(keyword == .serverAliveInterval ? .serverAliveInterval(seconds) : .connectTimeout(seconds))

        case .serverAliveCountMax:
            guard let value = single() else { return nil }
            guard let count = ValueSyntax.count(value) else {
                return bad("bad number \(value.quotedForMessage) (expected a whole number, 0 or more)")
            }
            return .setting(.serverAliveCountMax(count))

        case .gatewayPorts, .exitOnForwardFailure, .identitiesOnly:
            guard let value = single() else { return nil }
            guard let flag = ValueSyntax.flag(value) else {
                return bad("bad value \(value.quotedForMessage) (expected yes or no)")
            }
            switch keyword {
            case .gatewayPorts: return .setting(.gatewayPorts(flag))
            case .exitOnForwardFailure: return .setting(.exitOnForwardFailure(flag))
            default: return .setting(.identitiesOnly(flag))
            }

        case .ignoreUnknown:
            guard let value = single() else { return nil }
            ignoreUnknown.append(PatternList(value))
            return nil

        case .identityAgent:
            guard let value = single() else { return nil }
            // The older `$NAME` form (no braces): the socket path is in that variable.
            if value.hasPrefix("$"), !value.hasPrefix("${") {
                let name = value.dropFirst()
                guard !name.isEmpty, name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                    return bad("invalid environment variable name in \(value.quotedForMessage)")
                }
                return .setting(.identityAgent(value))
            }
            if let problem = checkPath(value) { return unusable(problem) }
            return .setting(.identityAgent(value))

        case .globalKnownHostsFile:
            if args.contains(where: \.isEmpty) { return bad("empty file name") }
            if args.contains(where: { $0.lowercased() == "none" }) {
                if args.count > 1 { return bad("\"none\" must appear alone") }
                return .setting(.globalKnownHostsFiles([]))
            }
            if args.count > Self.maximumKnownHostsFiles {
                return bad("too many files (at most \(Self.maximumKnownHostsFiles))")
            }
            // Used as written: OpenSSH expands neither `~` nor tokens here.
            return .setting(.globalKnownHostsFiles(args))

        case .proxyJump:
            if args.count > 1 {
                return bad("takes one argument, found \(args.count): \(args.joined(separator: " ").quotedForMessage) (separate jump hosts with commas, no spaces)")
            }
            do {
                return .setting(.proxyJump(try ProxyJumpSyntax.parse(args[0])))
            } catch {
                return error.unusable ? unusable(error.message) : bad(error.message)
            }

        case .connectionAttempts:
            guard let value = single() else { return nil }
            // OpenSSH also takes a leading '+'; 0 is refused when connecting.
            let digits = value.hasPrefix("+") ? String(value.dropFirst()) : value
            guard let count = ValueSyntax.count(digits) else {
                return bad("bad number \(value.quotedForMessage) (expected a whole number, 1 or more)")
            }
            // OpenSSH reads 0 and refuses it when connecting to the host that uses it.
            if count == 0 { return unusable("bad number \(value.quotedForMessage) (expected a whole number, 1 or more)") }
            return .setting(.connectionAttempts(count))

        case .numberOfPasswordPrompts:
            guard let value = single() else { return nil }
            // OpenSSH reads it with strtonum: a leading '+' is taken.
            guard let count = ValueSyntax.count(value.hasPrefix("+") ? String(value.dropFirst()) : value) else {
                return bad("bad number \(value.quotedForMessage) (expected a whole number, 0 or more)")
            }
            return .setting(.numberOfPasswordPrompts(count))

        case .hashKnownHosts, .passwordAuthentication, .kbdInteractiveAuthentication:
            guard let value = single() else { return nil }
            guard let flag = ValueSyntax.flag(value) else {
                return bad("bad value \(value.quotedForMessage) (expected yes or no)")
            }
            switch keyword {
            case .hashKnownHosts: return .setting(.hashKnownHosts(flag))
            case .passwordAuthentication: return .setting(.passwordAuthentication(flag))
            default: return .setting(.kbdInteractiveAuthentication(flag))
            }

        case .pubkeyAuthentication:
            guard let value = single() else { return nil }
            guard let mode = PubkeyAuthenticationMode(configValue: value) else {
                return bad("bad value \(value.quotedForMessage) (expected yes, no, unbound or host-bound)")
            }
            return .setting(.pubkeyAuthentication(mode))

        case .preferredAuthentications:
            guard let value = single() else { return nil }
            var methods: [AuthenticationMethod] = []
            for name in value.split(separator: ",", omittingEmptySubsequences: false) {
                // OpenSSH skips names it does not know; tunnel will not guess
                // what was meant, but only the hosts using the line are affected.
                guard !name.isEmpty else {
                    return unusable("empty method name in \(value.quotedForMessage) (a comma-separated list, no spaces)")
                }
                guard let method = AuthenticationMethod(rawValue: String(name)) else {
                    let known = AuthenticationMethod.allCases.map(\.rawValue).joined(separator: ", ")
                    return unusable("unknown method \(String(name).quotedForMessage) (known: \(known))")
                }
                methods.append(method)
            }
            return .setting(.preferredAuthentications(methods))

        case .bindAddress:
            guard let value = single() else { return nil }
            // OpenSSH keeps any text and fails when connecting from it.
            guard Self.isBindAddress(value) else {
                return unusable("bad address \(value.quotedForMessage) (expected an IPv4 or IPv6 address, without brackets or port, or a host name)")
            }
            return .setting(.bindAddress(value))

        case .addressFamily:
            guard let value = single() else { return nil }
            guard let family = AddressFamily(configValue: value) else {
                return bad("bad value \(value.quotedForMessage) (expected any, inet or inet6)")
            }
            return .setting(.addressFamily(family))

        case .tag:
            guard let value = single() else { return nil }
            return .setting(.tag(value))

        case .streamLocalBindMask:
            guard let value = single() else { return nil }
            guard let mask = ValueSyntax.octalMask(value) else {
                return bad("bad mask \(value.quotedForMessage) (expected octal permission bits, 0 to 0777)")
            }
            return .setting(.streamLocalBindMask(mask))

        case .streamLocalBindUnlink:
            guard let value = single() else { return nil }
            guard let flag = ValueSyntax.flag(value) else {
                return bad("bad value \(value.quotedForMessage) (expected yes or no)")
            }
            return .setting(.streamLocalBindUnlink(flag))

        case .permitRemoteOpen:
            switch PermitRemoteOpen.parse(args) {
            case .success(let permit): return .setting(.permitRemoteOpen(permit))
            case .failure(let error): return bad(error.message)
            }

        case .ciphers, .macs, .kexAlgorithms, .hostKeyAlgorithms:
            // An AlgorithmKind is named by its keyword.
            guard let value = single(), let kind = AlgorithmKind(rawValue: keyword.name) else { return nil }
            // OpenSSH refuses the file for an empty name too ("Bad SSH2 cipher spec").
            guard let list = AlgorithmList(kind: kind, text: value, location: location) else {
                return bad("bad list \(value.quotedForMessage) (comma-separated names, no spaces; a leading +, - or ^ appends, removes or puts first)")
            }
            // OpenSSH checks every name of a Ciphers, MACs or KexAlgorithms list that adds (plain, + or ^) against
            // the names it knows, so a pattern there is "Bad SSH2 cipher spec"; only a removing list (-) and
            // HostKeyAlgorithms take patterns.
            if kind != .hostKey, list.operation != .remove, let pattern = list.patterns.first(where: { $0.contains(where: { "*?!".contains($0) }) }) {
                return bad("\(pattern.quotedForMessage) is a pattern: \(kind.keyword) takes patterns only in a list that removes (a leading -), as in OpenSSH")
            }
            return .setting(.algorithms(list))

        case .tunnelReconnectDelay, .tunnelReconnectMaxDelay:
            guard let value = single() else { return nil }
            guard let seconds = ValueSyntax.seconds(value), seconds > 0 else {
                return bad("bad time value \(value.quotedForMessage) (seconds, at least 1; or e.g. 30s, 5m)")
            }
            return .setting(keyword == .tunnelReconnectDelay ? .reconnectDelay(seconds) : .reconnectMaxDelay(seconds))

        case .tunnelSessions:
            guard let value = single() else { return nil }
            guard let count = Int(value), HostConfig.sessionsRange.contains(count) else {
                return bad("bad value \(value.quotedForMessage) (a number of SSH sessions from \(HostConfig.sessionsRange.lowerBound) to \(HostConfig.sessionsRange.upperBound))")
            }
            return .setting(.sessions(count))

        case .tunnelProxyAuth:
            guard let value = single() else { return nil }
            if value.lowercased() == "none" { return .setting(.proxyAuth(nil)) }
            guard let colon = value.firstIndex(of: ":"), colon != value.startIndex else {
                return bad("bad value (expected user:password, or none; the value is not shown here)")
            }
            return .setting(.proxyAuth(ProxyAuth(user: String(value[..<colon]), password: String(value[value.index(after: colon)...]))))
        }
    }

    /// `CanonicalizeHostname yes|always|no` (OpenSSH's values), for its second pass only.
    /// `ProxyCommand`: the rest of the line after the keyword and the blanks or `=` after it, trailing blanks
    /// dropped, as OpenSSH's readconf.c takes it (a `#` in it is part of the command); `none` (any case, as
    /// `ssh -G` shows) for a direct connection.
    private func proxyCommand(_ rawLine: Substring, at location: SourceLocation) -> Statement {
        let blanks: Set<Character> = [" ", "\t", "\r", "\n", "\u{0C}"]
        var rest = rawLine.drop(while: { blanks.contains($0) })
        rest = rest.drop(while: { !blanks.contains($0) && $0 != "=" })
        rest = rest.drop(while: { blanks.contains($0) || $0 == "=" })
        while let last = rest.last, blanks.contains(last) { rest = rest.dropLast() }
        let command = String(rest)
        return Statement(location: location, directive: .setting(.proxyCommand(command.lowercased() == "none" ? nil : command)))
    }

    private mutating func canonicalizeHostname(_ args: [String], at location: SourceLocation) -> Statement? {
        let value = args.first?.lowercased() ?? ""
        let on: Bool
        switch value {
        case "yes", "true", "always": on = true
        case "no", "false": on = false
        default:
            fail("CanonicalizeHostname: bad value \(value.quotedForMessage) (expected yes, no or always)", at: location)
            return nil
        }
        return Statement(location: location, directive: .setting(.canonicalizeHostname(on)))
    }

    /// A Match line, split from the raw text as OpenSSH splits it (its
    /// criteria follow different quoting rules from other keywords).
    private mutating func match(_ rawLine: Substring, at location: SourceLocation) -> Statement? {
        do {
            let condition = try MatchSyntax.parse(MatchSyntax.tokens(afterKeywordOf: rawLine), at: location)
            hasMatch = true
            if condition.requestsFinalPass { wantsFinalPass = true }
            if condition.hasExec { execLocations.append(location) }
            return Statement(location: location, directive: .match(condition))
        } catch {
            fail(error.message, at: location)
            // Its block must still apply to nothing, not to the block before it.
            hasMatch = true
            return Statement(location: location, directive: .match(MatchCondition(criteria: [MatchCriterion(kind: .all, negated: true)], location: location)))
        }
    }

    /// OpenSSH's SSH_MAX_HOSTS_FILES.
    static let maximumKnownHostsFiles = 32

    /// What getaddrinfo(3) can take as a local address to bind to: an IPv4
    /// address, an IPv6 address (optionally with a `%zone`), or a host name.
    static func isBindAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return true }
        var address = Substring(text)
        if let percent = text.firstIndex(of: "%") {
            let zone = text[text.index(after: percent)...]
            guard !zone.isEmpty, zone.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") }) else {
                return false
            }
            address = text[..<percent]
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(address), &v6) == 1 { return true }
        if address.endIndex != text.endIndex { return false }
        // A host name: labels of letters, digits, '-' and '_', separated by
        // single dots; not something that only looks like an IPv4 address.
        if text.allSatisfy({ $0 == "." || ($0.isASCII && $0.isNumber) }) { return false }
        guard let first = text.first, first.isASCII && (first.isLetter || first.isNumber) else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            && !text.contains("..")
    }

    // MARK: Unknown keywords

    private func isKnown(_ keyword: String) -> Bool {
        let lowered = keyword.lowercased()
        return Keyword.byLowercasedName[lowered] != nil || KnownOpenSSHKeywords.ignored[lowered] != nil
    }

    private func displayName(_ keyword: String) -> String {
        let lowered = keyword.lowercased()
        return Keyword.byLowercasedName[lowered]?.name ?? KnownOpenSSHKeywords.ignored[lowered] ?? keyword
    }

    /// An error, unless an earlier IgnoreUnknown covers the word.
    ///
    /// OpenSSH applies IgnoreUnknown only when its line is in a block that
    /// matches the host being connected to, so whether a file is valid can
    /// depend on the host. Here errors are found once per file, so an
    /// IgnoreUnknown anywhere earlier in the file counts: put IgnoreUnknown
    /// before the first Host line to be valid for `ssh -F` as well.
    private mutating func unknownKeyword(_ keyword: String, at location: SourceLocation) {
        if ignoreUnknown.contains(where: { $0.matches(keyword) }) { return }
        fail("unknown keyword \(keyword.quotedForMessage)", at: location)
    }

    // MARK: Expansion checks

    /// Checks `%` tokens and `${VAR}` now, so a typo is reported with its line.
    private func checkExpansion(_ value: String, tokens: Set<Character>, environment: Bool) -> String? {
        do {
            _ = try Expansion.expand(value, tokens: tokens, value: { _ in "" },
                                     environment: environment ? context.environment : nil)
            return nil
        } catch {
            return error.message
        }
    }

    private func checkPath(_ path: String) -> String? {
        if let problem = checkExpansion(path, tokens: Expansion.fileTokens, environment: true) { return problem }
        if Expansion.expandTilde(path, home: context.homeDirectory) == nil {
            return "no such user in \(path.quotedForMessage)"
        }
        return nil
    }

    private mutating func fail(_ message: String, at location: SourceLocation) {
        diagnostics.error(message, at: location)
    }

    // MARK: Include

    /// OpenSSH semantics for a user config: `~` expanded, relative paths are
    /// under ~/.ssh, globs sorted, a pattern matching nothing is not an error.
    private mutating func include(_ args: [String], at location: SourceLocation, depth: Int) -> [IncludedFile] {
        var files: [IncludedFile] = []
        // OpenSSH expands Include's `~` with glob(3)'s GLOB_TILDE, which takes
        // $HOME (the password database only when HOME is unset or empty),
        // unlike the `~` of IdentityFile and UserKnownHostsFile.
        let home = context.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? context.homeDirectory
        for argument in args {
            if argument.isEmpty {
                fail("Include: empty file name", at: location)
                continue
            }
            let pattern: String
            if argument.hasPrefix("~") {
                guard let expanded = Expansion.expandTilde(argument, home: home) else {
                    fail("Include: no such user in \(argument.quotedForMessage)", at: location)
                    continue
                }
                pattern = expanded
            } else if argument.hasPrefix("/") {
                pattern = argument
            } else {
                pattern = (home as NSString).appendingPathComponent(".ssh/" + argument)
            }
            for path in Glob.paths(matching: pattern) {
                if depth + 1 > Self.maximumIncludeDepth {
                    fail("Include: too many nested includes (more than \(Self.maximumIncludeDepth)) at \(path.quotedForMessage)", at: location)
                    continue
                }
                let identity = ConfigFileReader.identity(of: path)
                if includeStack.contains(identity) {
                    fail("Include: \(path.quotedForMessage) includes itself", at: location)
                    continue
                }
                switch ConfigFileReader.read(path: path) {
                case .failure(let problem):
                    fail("Include: \(problem.message)", at: location)
                case .success(let text):
                    files.append(IncludedFile(path: path, statements: parse(text: text, file: path, identity: identity, depth: depth + 1)))
                }
            }
        }
        return files
    }
}

/// Filename globbing with the C library's glob(3): sorted, like OpenSSH.
enum Glob {
    static func paths(matching pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(pattern, 0, nil, &result) == 0 else { return [] }
        var paths: [String] = []
        for i in 0..<Int(result.gl_pathc) {
            if let cString = result.gl_pathv[i] { paths.append(String(cString: cString)) }
        }
        return paths
    }
}
