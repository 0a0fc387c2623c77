import Foundation
import Testing
import TunnelTestSupport
@testable import TunnelConfig

/// Many small random files of Host and Match blocks (a fixed seed, so a
/// failure can be replayed), each resolved for a few names by tunnel and by
/// `ssh -G`: the order of evaluation, first-value-wins across passes, and
/// which name each criterion sees are easy to get subtly wrong.
@Suite("Random Host/Match files: same answers as ssh -G", .enabled(if: OpenSSH.path != nil, "ssh is not installed"))
struct MatchFuzzOracleTests {
    typealias Random = SplitMix64

    static let patterns = ["a", "b", "a*", "*.example.com", "*", "b.example.com", "10.0.0.*", "a,b", "!a,*", "c", "A"]
    static let users = ["u1", "u2", "deploy", "u*", "!u1,*"]

    static func header(_ r: inout Random) -> String {
        switch r.next() % 12 {
        case 0, 1, 2: return "Host \(r.pick(patterns))"
        case 3: return "Match host \(r.pick(patterns))"
        case 4: return "Match originalhost \(r.pick(patterns))"
        case 5: return "Match user \(r.pick(users))"
        case 6: return "Match !host \(r.pick(patterns))"
        case 7: return "Match final host \(r.pick(patterns))"
        case 8: return r.pick(["Match canonical", "Match final", "Match !final", "Match all"])
        case 9: return "Match host \(r.pick(patterns)) user \(r.pick(users))"
        case 10: return r.next() % 2 == 0 ? "Match originalhost \(r.pick(patterns)) !user \(r.pick(users))"
            : "Match \(r.pick(["", "!"]))exec @DIR@/\(r.pick(["yes", "no"])).sh \(r.pick(["", "host \(r.pick(patterns))"]))"
        default: return "Host \(r.pick(patterns)) \(r.pick(patterns))"
        }
    }

    static func setting(_ r: inout Random) -> String {
        switch r.next() % 9 {
        case 0: return "User \(r.pick(["u1", "u2", "deploy"]))"
        case 1: return "Port \(2000 + r.next() % 5)"
        case 2: return "HostName \(r.pick(["a.example.com", "10.0.0.5", "B.Example.com", "%h.example.com", "10.1", "c"]))"
        case 3: return "LocalForward \(7000 + r.next() % 4) t:\(1 + r.next() % 3)"
        case 4: return "IdentityFile ~/.ssh/k\(r.next() % 4)"
        case 5: return "ServerAliveInterval \(r.next() % 4)"
        case 6: return "ConnectTimeout \(1 + r.next() % 4)"
        case 7: return r.next() % 4 == 0 ? "CanonicalizeHostname yes" : "GatewayPorts \(r.pick(["yes", "no"]))"
        default: return "DynamicForward \(1080 + r.next() % 3)"
        }
    }

    /// A file; `include`: the name of a file its blocks may include.
    static func file(_ r: inout Random, include: String?) -> [String] {
        var lines: [String] = []
        for _ in 0..<(r.next() % 3) { lines.append(setting(&r)) }
        for _ in 0..<(2 + r.next() % 6) {
            lines.append(header(&r))
            for _ in 0..<(1 + r.next() % 3) {
                if let include, r.next() % 5 == 0 {
                    lines.append("  Include @DIR@/\(include)")
                } else {
                    lines.append("  " + setting(&r))
                }
            }
        }
        return lines
    }

    @Test(arguments: 0..<60)
    func randomFileMatchesOpenSSH(_ seed: Int) throws {
        var r = Random(state: UInt64(seed) &* 7919 &+ 17)
        let dir = try TemporaryDirectory()
        let fill = { (lines: [String]) in lines.joined(separator: "\n").replacingOccurrences(of: "@DIR@", with: dir.path) + "\n" }
        for (name, status) in [("yes.sh", 0), ("no.sh", 1)] {
            chmod(dir.write(name, "#!/bin/sh\nexit \(status)\n"), 0o755)
        }
        let included = Self.file(&r, include: nil)
        dir.write("inc.conf", fill(included))
        let lines = Self.file(&r, include: "inc.conf")
        let path = dir.write("fuzz.conf", fill(lines))
        let config = try TunnelConfigFile.load(path: path, context: .current)
        for host in ["a", "b", "c", "A", "a.example.com"] {
            let ssh = try OpenSSH.dump(config: path, host: host)
            let ours = Dictionary(grouping: config.resolvedSettings(host: host), by: \.keyword).mapValues { $0.map(\.value) }
            for keyword in TunnelConfigFile.resolvedKeywords where ours[keyword] != ssh[keyword] {
                let file = lines.joined(separator: "\n") + "\n--- inc.conf\n" + included.joined(separator: "\n")
                Issue.record("seed \(seed), host \(host), \(keyword): tunnel \(ours[keyword] ?? []) ssh \(ssh[keyword] ?? [])\n\(file)")
            }
        }
    }
}
