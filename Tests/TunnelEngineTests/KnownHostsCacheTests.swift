import Foundation
import Testing
import TunnelConfig
@testable import TunnelEngine

/// known_hosts is parsed once and reused, but never after the file changed: a stale copy could keep trusting a key
/// that was just revoked or replaced.
@Suite("KnownHostsCache")
struct KnownHostsCacheTests {
    let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    let otherKey = "AAAAC3NzaC1lZDI1NTE5AAAAIBAdXaDKR6oV5zG4ZJYtDZt2WKk+E2oj8sk7X6n5l5AA"

    func policy(_ path: String) -> HostKeyPolicy { HostKeyPolicy(mode: .strict, knownHostsFiles: [path]) }

    @Test("a changed file is read again; an unchanged one gives the same entries")
    func changesAreSeen() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("khcache-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/known_hosts"
        let cache = KnownHostsCache()

        try "a.example ssh-ed25519 \(key)\n".write(toFile: path, atomically: false, encoding: .utf8)
        let first = try cache.load(policy(path))
        #expect(first.entries.count == 1)
        #expect(try cache.load(policy(path)).entries.map(\.line) == [1])

        // Appended in place (same inode): the size changes.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("@revoked a.example ssh-ed25519 \(key)\n".utf8))
        try handle.close()
        #expect(try cache.load(policy(path)).entries.count == 2)

        // Replaced by a new file (a new inode, as editors and ssh-keygen -R do).
        let replaced = "b.example ssh-ed25519 \(otherKey)\n@revoked b.example ssh-ed25519 \(otherKey)\n"
        try replaced.write(toFile: path, atomically: true, encoding: .utf8)
        let reread = try cache.load(policy(path))
        #expect(reread.entries.count == 2)
        #expect(reread.knownKeyTypes(host: "a.example", port: 22).isEmpty, "the old file's entries must be gone")

        // Removed: counts as empty, as a missing file always does.
        try FileManager.default.removeItem(atPath: path)
        #expect(try cache.load(policy(path)).entries.isEmpty)
    }
}
