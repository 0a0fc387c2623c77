import Digests
import Foundation
import Testing
@testable import TunnelConfig
import TunnelTestSupport

/// `accept-new` adds lines to a file that other programs (ssh, another tunnel) may be adding to at the same
/// moment: no line may be torn or lost, and the file keeps its other lines and its mode.
@Suite("known_hosts appends")
struct KnownHostsAppendTests {
    @Test("concurrent writers: every line arrives whole, old lines and the file's mode are kept")
    func concurrentWritersLoseNothing() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = dir + "/known_hosts"
        let key = KeyFixtures.fakeKey(type: "ssh-ed25519", seed: 9)
        // An existing file with a comment, an entry and no final newline, readable by the group on purpose.
        let existing = "# mine\nold.example ssh-ed25519 \(Base64.encode(key))"
        try KeyFixtures.write(existing, to: path)
        chmod(path, 0o640)

        // Each writer opens the file itself, as a separate process would (O_APPEND's guarantee is per file,
        // whoever holds the descriptor).
        let writers = 4, linesEach = 400
        DispatchQueue.concurrentPerform(iterations: writers) { writer in
            for n in 0..<linesEach {
                try? KnownHosts.append(host: "w\(writer)-\(n).example", port: 22, keyType: "ssh-ed25519", key: key, to: path)
            }
        }

        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix(existing + "\n"), "the old lines are kept and the missing newline added once")
        let kh = try KnownHosts(files: [path])
        #expect(kh.skippedLines.isEmpty, "torn lines: \(kh.skippedLines.map(\.reason))")
        #expect(kh.entries.count == 1 + writers * linesEach)
        let recorded = Set(kh.entries.filter { $0.key == key }.map(\.hostPatterns))
        let lost = (0..<writers).flatMap { w in (0..<linesEach).map { "w\(w)-\($0).example" } }.filter { !recorded.contains($0) }
        #expect(lost.isEmpty, "\(lost.count) lines lost, e.g. \(lost.prefix(3))")
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o640, "an existing file keeps its mode")
    }
}
