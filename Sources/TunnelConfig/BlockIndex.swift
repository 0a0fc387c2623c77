// Fast resolving: the statements flattened once into blocks, so that a host
// is resolved by looking only at the blocks that can apply to it instead of
// walking every line of every file (which made resolving all the hosts of a
// large config quadratic).
//
// Same answers as `Resolver.walk` (kept as the reference implementation):
//
// - In the main file, settings before the first Host line apply to every host.
// - After a `Host` line, settings apply when its patterns match the host.
// - After a `Match` line, settings apply to no host here: a file with a Match
//   line (or CanonicalizeHostname, which can ask for a second pass) is
//   resolved by `Resolver.collect` instead, since its settings depend on more
//   than the name (`TunnelConfigFile.collectSettings`).
// - An included file starts in the includer's state: its settings before its
//   first Host line apply when the includer's block does, and after one of its
//   Host lines they apply when the includer's block does AND that line
//   matches. Nested includes extend this, so a block's condition is a
//   conjunction of pattern lists, one per file level that had a Host line in
//   effect. (This is OpenSSH's "never match" rule for included files.)
// - After the Include line the includer's block goes on unchanged.
//
// Settings are applied in file order, so first-value-wins and the order of
// accumulated forwards and identity files are the same as with the walk.

struct BlockIndex: Sendable {
    /// A run of settings that share one condition.
    struct Block: Sendable {
        /// Every list must match the host; empty: applies to every host.
        var conditions: [[HostPattern]]
        var settings: [Setting]

        func applies(to host: String) -> Bool {
            conditions.allSatisfy { $0.matches(host: host) }
        }
    }

    /// In file order. Blocks that can never apply (after `Match`) are left out.
    private(set) var blocks: [Block] = []
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
            // The shortest all-literal list gives the fewest index entries.
            let literal = block.conditions
                .filter { !$0.isEmpty && $0.allSatisfy(\.isLiteral) }
                .min { $0.count < $1.count }
            guard let literal else {
                unindexed.append(number)
                continue
            }
            for pattern in literal where byName[pattern.pattern, default: []].last != number {
                byName[pattern.pattern, default: []].append(number)
            }
        }
    }

    /// Flattens one file's statements. `outer`: the condition of the
    /// includer's block at the Include line (`[]` in the main file: always);
    /// `nil` when that block can never apply.
    private mutating func add(_ statements: [Statement], outer: [[HostPattern]]?) {
        // Before the file's first Host line: the includer's state.
        var condition = outer
        var settings: [Setting] = []
        func flush(_ blocks: inout [Block]) {
            if let condition, !settings.isEmpty {
                blocks.append(Block(conditions: condition, settings: settings))
            }
            settings = []
        }
        for statement in statements {
            switch statement.directive {
            case .host(let patterns):
                flush(&blocks)
                condition = outer.map { $0 + [patterns] }
            case .match:
                flush(&blocks)
                condition = nil
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

    /// The settings that apply to `host`, as `Resolver.walk` collects them.
    func settings(for host: String) -> CollectedSettings {
        var settings = CollectedSettings()
        let named = byName[host] ?? []
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
            if block.applies(to: host) {
                for setting in block.settings { settings.apply(setting) }
            }
        }
        return settings
    }
}
