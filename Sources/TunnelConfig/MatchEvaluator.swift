// Whether a Match line holds for the host being resolved, at the point of
// the file where it stands, as OpenSSH's match_cfg_line decides: criteria
// left to right, every one must hold; values come from the settings read so
// far (User, Port, HostName, Tag: first value wins, so later lines cannot
// change them); an `exec` is not run once an earlier criterion failed.

struct MatchEvaluator {
    let resolver: Resolver

    /// Records a failed `exec` in `settings.problems` (and counts it as false).
    func holds(_ condition: MatchCondition, settings: inout CollectedSettings) -> Bool {
        var result = true
        for criterion in condition.criteria {
            let matched: Bool
            switch criterion.kind {
            case .all:
                // `all` ends the line; a `!all` makes it false.
                return result && !criterion.negated
            case .canonical, .final:
                matched = resolver.finalPass
            case .host(let list):
                matched = PatternListMatch.matches(matchHost(settings), list: list, lowercase: true)
            case .originalHost(let list):
                matched = PatternListMatch.matches(resolver.originalHost, list: list, lowercase: true)
            case .user(let list):
                matched = PatternListMatch.matches(remoteUser(settings), list: list, lowercase: false)
            case .localUser(let list):
                matched = PatternListMatch.matches(resolver.context.userName, list: list, lowercase: false)
            case .localNetwork(let networks):
                matched = LocalNetwork.matches(networks)
            case .tagged(let list):
                matched = PatternListMatch.matches(settings.tag ?? "", list: list, lowercase: false)
            case .exec(let command):
                // OpenSSH skips the command once the line cannot hold.
                if !result { continue }
                // Not running it: the whole line does not hold, negated or not.
                guard case .run(let timeout) = resolver.matchExec else { return false }
                matched = run(command, timeout: timeout, at: condition.location, settings: &settings)
            }
            if matched == criterion.negated { result = false }
        }
        return result
    }

    /// The host `Match host` tests: in the first pass the HostName so far
    /// (with `%h` expanded) or the name asked for; in the final pass the host name.
    private func matchHost(_ settings: CollectedSettings) -> String {
        if resolver.finalPass { return resolver.host }
        guard let raw = settings.hostName else { return resolver.host }
        return (try? Expansion.expand(raw, tokens: Expansion.hostNameTokens, value: { _ in resolver.host },
                                      environment: nil)) ?? raw
    }

    private func remoteUser(_ settings: CollectedSettings) -> String {
        settings.user ?? resolver.context.userName
    }

    private func run(_ command: String, timeout: Double, at location: SourceLocation, settings: inout CollectedSettings) -> Bool {
        let context = resolver.context
        let host = matchHost(settings)
        let port = String(settings.port ?? 22)
        let user = remoteUser(settings)
        let jump = settings.proxyJump?.hops.last?.host ?? ""
        let expanded: String
        do {
            expanded = try Expansion.expand(command, tokens: MatchSyntax.execTokens, value: { token in
                switch token {
                // As for file paths (and OpenSSH 9.2): %l%h%p%r. (Newer OpenSSH adds %j.)
                case "C": return SHA1.hexDigest(context.localHostName + host + port + user)
                case "L": return String(context.localHostName.prefix { $0 != "." })
                case "d": return context.homeDirectory
                case "h", "k": return host
                case "i": return String(context.userID)
                case "j": return jump
                case "l": return context.localHostName
                case "n": return resolver.originalHost
                case "p": return port
                case "r": return user
                case "u": return context.userName
                default: return ""
                }
            }, environment: nil)
        } catch {
            // Checked when the file was read; kept as a problem all the same.
            settings.problems.append(ConfigError(location: location, message: "Match exec: \(error.message)"))
            return false
        }
        func execute() -> Result<Int32, MatchExec.Failure> {
            do throws(MatchExec.Failure) {
                return .success(try MatchExec.run(expanded, environment: context.environment, timeout: timeout))
            } catch {
                return .failure(error)
            }
        }
        let outcome = resolver.execResults.map { $0.outcome(of: expanded, run: execute) } ?? execute()
        switch outcome {
        case .success(let status):
            return status == 0
        case .failure(let error):
            let problem = ConfigError(location: location, message: "Match exec \(expanded.quotedForMessage): \(error.message)")
            if !settings.problems.contains(problem) { settings.problems.append(problem) }
            return false
        }
    }
}
