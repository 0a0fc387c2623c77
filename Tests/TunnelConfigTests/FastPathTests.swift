import Foundation
import Testing
import TunnelTestSupport
@testable import TunnelConfig

/// The fast paths (BlockIndex for resolving, byte-level line splitting and
/// pattern matching) against the straightforward definitions they replace.
@Suite("Fast paths agree with the reference implementations")
struct FastPathTests {
    typealias Random = SplitMix64

    /// Settings lines to sprinkle: single-value keywords (first wins) and
    /// accumulating ones, some repeated so duplicates get dropped.
    static func setting(_ random: inout Random) -> String {
        switch random.below(14) {
        case 10: return "ProxyJump \(random.pick(["none", "j1", "u@j2:2222", "j1,j3"]))"
        case 11: return "ProxyCommand nc %h %p"
        case 12: return "ConnectionAttempts \(1 + random.below(4))"
        case 13: return "GlobalKnownHostsFile /etc/kh\(random.below(3))"
        case 0: return "Port \(2000 + random.below(50))"
        case 1: return "User u\(random.below(20))"
        case 2: return "HostName %h.n\(random.below(5)).example"
        case 3: return "IdentityFile ~/.ssh/id_\(random.below(8))"
        case 4: return "LocalForward \(10000 + random.below(300)) db:\(random.below(5) + 1)"
        case 5: return "RemoteForward \(20000 + random.below(100)) web:80"
        case 6: return "DynamicForward \(30000 + random.below(100))"
        case 7: return "ServerAliveInterval \(random.below(60))"
        case 8: return "StrictHostKeyChecking \(random.pick(["yes", "no", "accept-new", "ask"]))"
        default: return "ConnectTimeout \(random.below(30))"
        }
    }

    /// A Host line: literal names (sometimes several, or repeated), wildcards,
    /// negations, and mixes of them.
    static func hostLine(_ random: inout Random, names: [String]) -> String {
        var patterns: [String] = []
        for _ in 0...random.below(3) {
            switch random.below(10) {
            case 0: patterns.append(random.pick(["*", "h1*", "*.alias", "h?-?", "h2-1?"]))
            case 1: patterns.append("!" + random.pick(names))
            case 2: patterns.append("!h3*")
            default: patterns.append(random.pick(names))
            }
        }
        return "Host " + patterns.joined(separator: " ")
    }

    /// A Match line (no `exec`: this test runs nothing), testing what earlier lines set.
    static func matchLine(_ random: inout Random, names: [String]) -> String {
        let negation = random.chance(20) ? "!" : ""
        switch random.below(7) {
        case 0: return "Match \(negation)host \(random.pick(names)),*.n\(random.below(5)).example"
        case 1: return "Match \(negation)originalhost \(random.pick(names)),h1*"
        case 2: return "Match \(negation)user u\(random.below(20)),u1*"
        case 3: return "Match \(random.pick(["all", "!all", "final", "canonical", "!final"]))"
        case 4: return "Match final host *.example"
        case 5: return "Match originalhost \(random.pick(names)) \(negation)user u\(random.below(5))*"
        default: return "Match localuser alice host \(random.pick(names))*"
        }
    }

    /// Lines of one file: settings before the first Host line, Host blocks
    /// (and Match blocks, when `match`), and Include lines (in matching and
    /// non-matching blocks) while `depth` allows.
    static func fileLines(_ random: inout Random, names: [String], includes: [String], blocks: Int, match: Bool = false) -> [String] {
        var lines: [String] = []
        for _ in 0..<random.below(3) { lines.append(setting(&random)) }
        for _ in 0..<blocks {
            lines.append(match && random.chance(25) ? matchLine(&random, names: names) : hostLine(&random, names: names))
            for _ in 0..<random.below(5) {
                if !includes.isEmpty, random.chance(8) {
                    lines.append("  Include " + random.pick(includes))
                } else {
                    lines.append("  " + setting(&random))
                }
            }
        }
        return lines
    }

    @Test func bigGeneratedConfigWithIncludesResolvesLikeTheWalk() throws {
        let dir = try TemporaryDirectory()
        var random = Random(state: 42)
        let names = (0..<4).flatMap { file in (0..<12).map { "h\(file)-\($0)" } } + ["h1-1.alias", "db", "web3"]

        // Second-level files (included from first-level ones), then first-level
        // files (conf.d/*.conf, included by the main file, some from inside
        // Host blocks), then the main file.
        var nested: [String] = []
        for i in 0..<3 {
            nested.append(dir.write("nested/\(i).conf",
                                    Self.fileLines(&random, names: names, includes: [], blocks: 15).joined(separator: "\n")))
        }
        for i in 0..<6 {
            dir.write("conf.d/\(i).conf",
                      Self.fileLines(&random, names: names, includes: nested + ["\(dir.path)/nested/*.conf"], blocks: 60)
                        .joined(separator: "\n"))
        }
        var main = ["User top", "IdentityFile ~/.ssh/id_top", "Include \(dir.path)/conf.d/*.conf"]
        main += Self.fileLines(&random, names: names, includes: nested, blocks: 30)
        main += ["Host h0-1 h2-*", "  Include \(dir.path)/conf.d/0.conf", "Host *", "  Port 2222", "  LocalForward 9999 all:1"]
        let mainPath = dir.write("main.conf", main.joined(separator: "\n"))

        let config = try TunnelConfigFile.load(path: mainPath, context: testContext)
        // Enough blocks that most hosts skip most of them.
        #expect(config.index.blocks.count > 500)
        #expect(!config.index.byName.isEmpty)
        let hosts = config.concreteHostNames + ["nobody", "h1-", "h9-9", "H0-1", "web3.alias", ""]
        for host in hosts {
            #expect(config.resolve(host: host) == config.referenceResolve(host: host), "host \(host)")
        }
        #expect(config.tunnelHostNames == config.concreteHostNames.filter { config.referenceResolve(host: $0).hasForwards })
    }

    /// The same with Match blocks among the Host blocks (in every file level),
    /// so the index's once-per-line Match answers and the final pass are
    /// checked against the walk.
    @Test(arguments: [7, 8, 9, 10])
    func generatedConfigsWithMatchResolveLikeTheWalk(_ seed: UInt64) throws {
        let dir = try TemporaryDirectory()
        var random = Random(state: seed)
        let names = (0..<3).flatMap { file in (0..<8).map { "h\(file)-\($0)" } } + ["db", "x.example"]
        var nested: [String] = []
        for i in 0..<2 {
            nested.append(dir.write("nested/\(i).conf",
                                    Self.fileLines(&random, names: names, includes: [], blocks: 10, match: true).joined(separator: "\n")))
        }
        var main = ["User top"]
        main += Self.fileLines(&random, names: names, includes: nested, blocks: 60, match: true)
        main += ["Host *", "  Port 2222"]
        let config = try TunnelConfigFile.load(path: dir.write("main.conf", main.joined(separator: "\n")), context: testContext)
        #expect(config.hasMatch)
        for host in config.concreteHostNames + ["nobody", "h1-", "H0-1", "a.n1.example"] {
            #expect(config.resolve(host: host) == config.referenceResolve(host: host), "seed \(seed) host \(host)")
        }
    }

    /// Includes from blocks that do not apply, and names that are equal as
    /// Swift strings but not as patterns.
    @Test func matchBlocksIncludesAndUnicodeNames() throws {
        let dir = try TemporaryDirectory()
        let inc = dir.write("inc.conf", "Port 1\nHost a b\n  User inc-ab\nHost *\n  User inc-any\nHost c\n  Port 3\n")
        let text = """
            Host a
              Include \(inc)
            Host a c
              Port 4
              Include \(inc)
            Host b caf\u{E9}
              IdentityFile ~/.ssh/b
              Include \(inc)
            Host !a *
              Include \(inc)
              User star
            Host cafe\u{301} a
              HostName decomposed
            Host caf\u{E9}
              HostName composed
            """
        var parser = Parser(context: testContext)
        let statements = parser.parse(text: text, file: "t.conf", identity: "t.conf", depth: 0)
        #expect(!parser.diagnostics.hasErrors)
        #expect(!parser.hasMatch)
        let index = BlockIndex(statements)
        for host in ["a", "b", "c", "caf\u{E9}", "cafe\u{301}", "x"] {
            let resolver = Resolver(host: host)
            let fast = resolver.resolve(index.settings(for: host), context: testContext, location: nil)
            let reference = resolver.resolve(resolver.collect(statements), context: testContext, location: nil)
            #expect(fast == reference, "host \(host)")
        }
        let composed = Resolver(host: "caf\u{E9}")
        #expect(composed.resolve(index.settings(for: "caf\u{E9}"), context: testContext, location: nil).hostName == "composed")
    }

    @Test func asciiLineSplittingMatchesTheCharacterVersion() {
        var random = Random(state: 7)
        let pieces = ["Host", "Port", "=", " ", "  ", "\t", "\"", "'", "\\", "#", "a", "b c", "\r", "\u{0C}", "x=y", "\\ ", "\\\""]
        for _ in 0..<20_000 {
            var line = ""
            for _ in 0..<random.below(8) { line += random.pick(pieces) }
            let fast = Result { () throws(LineSplitter.Failure) in try LineSplitter.split(Substring(line)) }
            let reference = Result { () throws(LineSplitter.Failure) in try LineSplitter.splitCharacters(Substring(line)) }
            #expect(fast == reference, "line \(line.debugDescription)")
        }
    }

    @Test func asciiPatternMatchingMatchesTheScalarVersion() {
        var random = Random(state: 9)
        let alphabet: [Character] = ["a", "b", ".", "*", "?"]
        func word(_ length: Int) -> String { String((0..<length).map { _ in random.pick(alphabet) }) }
        for _ in 0..<20_000 {
            let text = word(random.below(6)).replacingOccurrences(of: "*", with: "a")
            let pattern = word(random.below(6))
            #expect(Wildcard.matches(text, pattern: pattern) == Wildcard.matchesScalars(text, pattern: pattern),
                    "\(text) against \(pattern)")
        }
    }

    @Test func crlfAndLoneCarriageReturnsSplitLinesAsBefore() throws {
        // "\r\n" ends a line; a lone "\r" is trailing blank space.
        let config = try TunnelConfigFile.parse(
            text: "Host a\r\n  Port 2\r\r\n  User u\r\nHost b\n  LocalForward 1 x:1\r\n", file: "t.conf", context: testContext)
        #expect(config.resolve(host: "a").port == 2)
        #expect(config.resolve(host: "a").user == "u")
        #expect(config.resolve(host: "b").localForwards.first?.location.line == 5)
    }
}
