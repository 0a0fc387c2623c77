// Fast resolving: the statements flattened once into blocks, so that a host
// is resolved by looking only at the blocks that can apply to it instead of
// walking every line of every file (which made resolving all the hosts of a
// large config quadratic).
//
// Same answers as `Resolver.walk` (kept as the reference implementation):
//
// - In the main file, settings before the first Host line apply to every host.
// - After a `Host` line, settings apply when its patterns match the host.
// - After a `Match` line, settings apply when its criteria hold. The criteria
//   depend on the settings read before the line (User, HostName, Port, Tag),
//   so each Match line is evaluated once per pass, where it stands: a probe
//   block with no settings sits at the line itself, and every later block
//   under it reuses that answer.
// - An included file starts in the includer's state: its settings before its
//   first Host or Match line apply when the includer's block does, and after
//   one of those lines they apply when the includer's block does AND that line
//   holds. Nested includes extend this, so a block's condition is a
//   conjunction, one term per file level that had a Host or Match line in
//   effect, checked outermost first. (This is OpenSSH's "never match" rule for
//   included files: a Match inside a block that does not apply is not evaluated.)
// - After the Include line the includer's block goes on unchanged.
//
// Settings are applied in file order, so first-value-wins and the order of
// accumulated forwards and identity files are the same as with the walk.

struct BlockIndex: Sendable {
    /// One term of a block's condition.
    enum Term: Sendable {
        case host([HostPattern])
        /// `number` identifies the Match line (its answer is computed once per pass).
        case match(number: Int, MatchCondition)
    }

    /// A run of settings that share one condition.
    struct Block: Sendable {
        /// Every term must hold, checked in order; empty: applies to every host.
        var conditions: [Term]
        var settings: [Setting]

        /// A term's host patterns when they are all literal names.
        var literalNames: [HostPattern]? {
            let lists = conditions.compactMap { term -> [HostPattern]? in
                if case .host(let patterns) = term, !patterns.isEmpty, patterns.allSatisfy(\.isLiteral) { return patterns }
                return nil
            }
            // The shortest all-literal list gives the fewest index entries.
            return lists.min { $0.count < $1.count }
        }
    }

    /// In file order. Blocks that can never apply are left out.
    private(set) var blocks: [Block] = []
    /// How many Match lines there are (`Term.match` numbers are below it).
    private(set) var matchCount = 0
    /// Blocks to check for every host (no condition, or a condition with a
    /// wildcard or a negation in each of its lists), ascending.
    private(set) var unindexed: [Int] = []
    /// Blocks one of whose condition lists is only literal names (no `*`, `?`
    /// or `!`): such a block can only apply to a host spelled as one of those
    /// names, so it is found under each of them. Ascending, no duplicates.
    private(set) var byName: [String: [Int]] = [:]

    init(_ statements: [Statement]) {
        add(statements, outer: [])
        for (number, block) in blocks.enumerated() {
            guard let literal = block.literalNames else {
                unindexed.append(number)
                continue
            }
            for pattern in literal where byName[pattern.pattern, default: []].last != number {
                byName[pattern.pattern, default: []].append(number)
            }
        }
    }

    /// Flattens one file's statements. `outer`: the condition of the
    /// includer's block at the Include line (`[]` in the main file: always).
    private mutating func add(_ statements: [Statement], outer: [Term]) {
        // Before the file's first Host or Match line: the includer's state.
        var condition = outer
        var settings: [Setting] = []
        func flush(_ blocks: inout [Block]) {
            if !settings.isEmpty {
                blocks.append(Block(conditions: condition, settings: settings))
            }
            settings = []
        }
        for statement in statements {
            switch statement.directive {
            case .host(let patterns):
                flush(&blocks)
                condition = outer + [.host(patterns)]
            case .match(let match):
                flush(&blocks)
                condition = outer + [.match(number: matchCount, match)]
                matchCount += 1
                // The probe: evaluates the line where it stands (for its
                // `exec` side effects and problems too, as the walk does).
                blocks.append(Block(conditions: condition, settings: []))
            case .include(let files):
                flush(&blocks)
                for file in files {
                    add(file.statements, outer: condition)
                }
            case .setting(let setting):
                settings.append(setting)
            }
        }
        flush(&blocks)
    }

    /// The settings that apply to `host`, as `Resolver.walk` collects them
    /// (for a file without Match lines).
    func settings(for host: String) -> CollectedSettings {
        var settings = CollectedSettings()
        collect(Resolver(host: host), into: &settings)
        return settings
    }

    /// One pass over the blocks that can apply to `resolver.host`, adding to
    /// `settings` (the second pass continues from the first's), as
    /// `Resolver.walk` does.
    func collect(_ resolver: Resolver, into settings: inout CollectedSettings) {
        let host = resolver.host
        let named = byName[host] ?? []
        // Each Match line's answer in this pass, once evaluated.
        var answers = [Bool?](repeating: nil, count: matchCount)
        // Merge the two ascending lists to visit blocks in file order.
        var u = 0, n = 0
        while u < unindexed.count || n < named.count {
            let number: Int
            if n == named.count || (u < unindexed.count && unindexed[u] < named[n]) {
                number = unindexed[u]
                u += 1
            } else {
                number = named[n]
                n += 1
            }
            // The name lookup is only a shortcut: check the real condition
            // (the dictionary compares names by Unicode canonical
            // equivalence, pattern matching by scalars).
            let block = blocks[number]
            var holds = true
            for term in block.conditions where holds {
                switch term {
                case .host(let patterns):
                    holds = patterns.matches(host: host)
                case .match(let id, let condition):
                    if let known = answers[id] {
                        holds = known
                    } else {
                        holds = MatchEvaluator(resolver: resolver).holds(condition, settings: &settings)
                        answers[id] = holds
                    }
                }
            }
            if holds {
                for setting in block.settings { settings.apply(setting) }
            }
        }
    }
}
