import Foundation
import Digests
import Testing
@testable import TunnelConfig
import TunnelTestSupport

@Suite("known_hosts")
struct KnownHostsTests {
    let edA = KeyFixtures.fakeKey(type: "ssh-ed25519", seed: 1)
    let edB = KeyFixtures.fakeKey(type: "ssh-ed25519", seed: 2)
    let ecA = KeyFixtures.fakeKey(type: "ecdsa-sha2-nistp256", seed: 3)
    let rsaA = KeyFixtures.fakeKey(type: "ssh-rsa", seed: 4)

    private func line(_ hosts: String, _ type: String, _ key: [UInt8], marker: String? = nil) -> String {
        [marker, hosts, type, Base64.encode(key), "comment here"].compactMap { $0 }.joined(separator: " ")
    }

    /// Writes `lines` to a known_hosts file in a fresh directory and loads it.
    private func load(_ lines: [String], file: String = "known_hosts") throws -> (KnownHosts, String) {
        let dir = try KeyFixtures.makeTempDirectory()
        let path = dir + "/" + file
        try KeyFixtures.write(lines.joined(separator: "\n") + "\n", to: path)
        return (try KnownHosts(files: [path]), dir)
    }

    @Test func lookupNameFollowsOpenSSH() {
        #expect(KnownHosts.lookupName(host: "example.com", port: 22) == "example.com")
        #expect(KnownHosts.lookupName(host: "Example.COM", port: 22) == "example.com")
        #expect(KnownHosts.lookupName(host: "127.0.0.1", port: 2222) == "[127.0.0.1]:2222")
        #expect(KnownHosts.lookupName(host: "::1", port: 2200) == "[::1]:2200")
        // ssh's lowercase() folds ASCII letters only, so a hashed name we write agrees with OpenSSH's.
        #expect(KnownHosts.lookupName(host: "\u{D1}and\u{FA}.Example", port: 22) == "\u{D1}and\u{FA}.example")
    }

    @Test func caseFoldingIsASCIIOnlyOnBothSidesAsInOpenSSH() throws {
        // match_hostname lowercases the name, match_pattern_list each pattern, both with tolower() (ASCII).
        let (kh, dir) = try load([
            line("\u{D1}AND\u{FA}.example", "ssh-ed25519", edA),
            line("*.Example.ORG", "ssh-ed25519", edB),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.check(host: "\u{D1}and\u{FA}.EXAMPLE", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[0]))
        #expect(kh.check(host: "\u{F1}and\u{FA}.example", port: 22, keyType: "ssh-ed25519", key: edA) == .unknown(otherKeyTypes: []),
                "a non-ASCII capital must not fold")
        #expect(kh.check(host: "www.EXAMPLE.org", port: 22, keyType: "ssh-ed25519", key: edB) == .match(kh.entries[1]))
    }

    @Test func plainMatchWithCommentsBlankLinesAndCase() throws {
        let (kh, dir) = try load([
            "# a comment",
            "",
            "   ",
            "  # indented comment",
            line("Server.Example.COM,10.0.0.5", "ssh-ed25519", edA),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.entries.count == 1)
        #expect(kh.skippedLines.isEmpty)
        let entry = try #require(kh.entries.first)
        #expect(entry.line == 5)
        #expect(entry.hostPatterns == "Server.Example.COM,10.0.0.5")
        #expect(entry.key == edA)
        #expect(kh.check(host: "server.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(entry))
        #expect(kh.check(host: "SERVER.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(entry))
        #expect(kh.check(host: "10.0.0.5", port: 22, keyType: "ssh-ed25519", key: edA) == .match(entry))
        #expect(kh.check(host: "10.0.0.6", port: 22, keyType: "ssh-ed25519", key: edA) == .unknown(otherKeyTypes: []))
    }

    @Test func crlfLinesAndTabsAreAccepted() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = dir + "/kh"
        try KeyFixtures.write("# windows\r\nhost1\tssh-ed25519\t\(Base64.encode(edA))\r\nhost2 ssh-ed25519 \(Base64.encode(edB))", to: path)
        let kh = try KnownHosts(files: [path])
        #expect(kh.entries.map(\.line) == [2, 3])
        let entry = try #require(kh.entries.first)
        #expect(kh.check(host: "host1", port: 22, keyType: "ssh-ed25519", key: edA) == .match(entry))
    }

    @Test func nonDefaultPortUsesBracketForm() throws {
        let (kh, dir) = try load([
            line("[127.0.0.1]:2222", "ssh-ed25519", edA),
            line("127.0.0.1", "ssh-ed25519", edB),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.check(host: "127.0.0.1", port: 2222, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[0]))
        // Port 22 uses the plain line only; the bracketed one does not apply.
        #expect(kh.check(host: "127.0.0.1", port: 22, keyType: "ssh-ed25519", key: edB) == .match(kh.entries[1]))
        #expect(kh.check(host: "127.0.0.1", port: 22, keyType: "ssh-ed25519", key: edA) == .changed(old: kh.entries[1]))
        #expect(kh.check(host: "127.0.0.1", port: 2200, keyType: "ssh-ed25519", key: edA) == .unknown(otherKeyTypes: []))
    }

    @Test func wildcards() throws {
        let (kh, dir) = try load([
            line("*.example.com", "ssh-ed25519", edA),
            line("db?.internal", "ssh-ed25519", edB),
            line("[*.lab]:*", "ssh-rsa", rsaA),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.check(host: "a.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[0]))
        #expect(kh.check(host: "a.b.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[0]))
        #expect(kh.check(host: "example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .unknown(otherKeyTypes: []))
        #expect(kh.check(host: "db1.internal", port: 22, keyType: "ssh-ed25519", key: edB) == .match(kh.entries[1]))
        #expect(kh.check(host: "db12.internal", port: 22, keyType: "ssh-ed25519", key: edB) == .unknown(otherKeyTypes: []))
        #expect(kh.check(host: "box.lab", port: 2022, keyType: "ssh-rsa", key: rsaA) == .match(kh.entries[2]))
        #expect(kh.check(host: "box.lab", port: 22, keyType: "ssh-rsa", key: rsaA) == .unknown(otherKeyTypes: []))
    }

    @Test func negationVetoesTheWholeLine() throws {
        let (kh, dir) = try load([
            line("*.example.com,!bad.example.com", "ssh-ed25519", edA),
            line("!bad2.example.com,*.example.com", "ssh-ed25519", edA),
            line("!only-negated.example.com", "ssh-ed25519", edA),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.check(host: "good.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[0]))
        // bad: line 1 is vetoed, line 2 still applies.
        #expect(kh.check(host: "bad.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[1]))
        // bad2: line 1 applies, line 2 is vetoed.
        #expect(kh.check(host: "bad2.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[0]))
        #expect(kh.knownKeyTypes(host: "bad.example.com", port: 22) == ["ssh-ed25519"])
        // A line of negations alone matches nothing.
        #expect(kh.check(host: "other.net", port: 22, keyType: "ssh-ed25519", key: edA) == .unknown(otherKeyTypes: []))

        let (vetoed, dir2) = try load([line("*,!bad.example.com", "ssh-ed25519", edA)])
        defer { KeyFixtures.removeTempDirectory(dir2) }
        #expect(vetoed.check(host: "bad.example.com", port: 22, keyType: "ssh-ed25519", key: edA)
            == .unknown(otherKeyTypes: []))
        #expect(vetoed.knownKeyTypes(host: "bad.example.com", port: 22).isEmpty)
    }

    @Test func changedUnknownAndMatchPrecedence() throws {
        let (kh, dir) = try load([
            line("host", "ecdsa-sha2-nistp256", ecA),
            line("host", "ssh-ed25519", edB),
            line("host,other", "ssh-ed25519", edA),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        // A match on any line wins over a different key of the same type on an earlier line.
        #expect(kh.check(host: "host", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[2]))
        // Same type, no matching key: changed, reporting the first such line.
        let edC = KeyFixtures.fakeKey(type: "ssh-ed25519", seed: 9)
        #expect(kh.check(host: "host", port: 22, keyType: "ssh-ed25519", key: edC) == .changed(old: kh.entries[1]))
        // No line of this type: unknown, listing the host's other lines.
        #expect(kh.check(host: "host", port: 22, keyType: "ssh-rsa", key: rsaA)
            == .unknown(otherKeyTypes: [kh.entries[0], kh.entries[1], kh.entries[2]]))
        #expect(kh.check(host: "other", port: 22, keyType: "ssh-rsa", key: rsaA) == .unknown(otherKeyTypes: [kh.entries[2]]))
    }

    @Test func revokedWinsOverEverything() throws {
        let (kh, dir) = try load([
            line("host", "ssh-ed25519", edA),
            line("*", "ssh-ed25519", edA, marker: "@revoked"),
            line("host", "ssh-ed25519", edB),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.entries[1].marker == .revoked)
        #expect(kh.check(host: "host", port: 22, keyType: "ssh-ed25519", key: edA) == .revoked(kh.entries[1]))
        #expect(kh.check(host: "elsewhere", port: 2222, keyType: "ssh-ed25519", key: edA) == .revoked(kh.entries[1]))
        // Other keys are unaffected, and revoked lines do not count as known key types.
        #expect(kh.check(host: "host", port: 22, keyType: "ssh-ed25519", key: edB) == .match(kh.entries[2]))
        #expect(kh.knownKeyTypes(host: "elsewhere", port: 22).isEmpty)
    }

    @Test func certAuthorityLinesAreIgnoredForHostKeys() throws {
        let (kh, dir) = try load([line("*.example.com", "ssh-ed25519", edA, marker: "@cert-authority")])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.entries.first?.marker == .certAuthority)
        #expect(kh.check(host: "a.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .unknown(otherKeyTypes: []))
        #expect(kh.knownKeyTypes(host: "a.example.com", port: 22).isEmpty)
    }

    @Test func knownKeyTypesInFileOrderWithoutRepeats() throws {
        let (kh, dir) = try load([
            line("host", "ecdsa-sha2-nistp256", ecA),
            line("other", "ssh-rsa", rsaA),
            line("host", "ssh-ed25519", edA),
            line("h*", "ecdsa-sha2-nistp256", ecA),
            line("host", "ssh-rsa", rsaA, marker: "@revoked"),
        ])
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.knownKeyTypes(host: "host", port: 22) == ["ecdsa-sha2-nistp256", "ssh-ed25519"])
        #expect(kh.knownKeyTypes(host: "nowhere", port: 22).isEmpty)
    }

    @Test func malformedLinesAreSkippedAndRemembered() throws {
        let (kh, dir) = try load([
            line("good", "ssh-ed25519", edA),
            "onlyhost",
            "host ssh-ed25519",
            "host ssh-ed25519 not*base64",
            "host ssh-rsa \(Base64.encode(edA))",  // blob says ed25519
            "@bogus host ssh-ed25519 \(Base64.encode(edA))",
            "host 1024 35 12345",  // SSH-1 RSA
            "|1|bad|hash ssh-ed25519 \(Base64.encode(edA))",
            "host ssh-ed25519 AAAA",  // decodes, but too short to be a blob
            line("good2", "ssh-ed25519", edB),
        ], file: "kh")
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(kh.entries.map(\.line) == [1, 10])
        #expect(kh.skippedLines.map(\.line) == [2, 3, 4, 5, 6, 7, 8, 9])
        #expect(kh.skippedLines.allSatisfy { $0.file.hasSuffix("/kh") && !$0.reason.isEmpty })
        #expect(kh.skippedLines[0].location == "\(dir)/kh:2")
    }

    @Test func missingFilesAreEmptyAndSeveralFilesAreMerged() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        try KeyFixtures.write(line("a", "ssh-ed25519", edA) + "\n", to: dir + "/one")
        try KeyFixtures.write(line("b", "ssh-ed25519", edB) + "\n", to: dir + "/two")
        let kh = try KnownHosts(files: [dir + "/one", dir + "/missing", dir + "/two"])
        #expect(kh.entries.map(\.file) == [dir + "/one", dir + "/two"])
        #expect(try KnownHosts(files: [dir + "/missing"]).entries.isEmpty)
    }

    /// `UserKnownHostsFile /dev/null` is how people say "remember nothing"; Foundation's whole-file read refuses
    /// character devices, which made it "permission denied".
    @Test func devNullIsAnEmptyFile() throws {
        #expect(try KnownHosts(files: ["/dev/null"]).entries.isEmpty)
    }

    @Test func unreadableFileIsAnError() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let error = #expect(throws: KnownHostsError.self) { try KnownHosts(files: [dir]) }
        #expect(error?.path == dir)
        #expect(error?.description.hasPrefix(dir + ": ") == true)
    }

    // root reads anything, so the permission case only means something for other users.
    @Test(.enabled(if: getuid() != 0, "root reads files whatever their permissions")) func permissionDeniedIsAnError() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = dir + "/kh"
        try KeyFixtures.write(line("a", "ssh-ed25519", edA) + "\n", to: path)
        try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: path)
        #expect(throws: KnownHostsError.self) { try KnownHosts(files: [path]) }
    }

    @Test func appendCreatesDirectoryAndFileThenReadsBack() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = dir + "/new/.ssh/known_hosts"
        try KnownHosts.append(host: "Box.Example.com", port: 22, keyType: "ssh-ed25519", key: edA, to: path)
        try KnownHosts.append(host: "127.0.0.1", port: 2222, keyType: "ssh-ed25519", key: edB, to: path)
        try KnownHosts.append(host: "hidden.example", port: 22, keyType: "ssh-rsa", key: rsaA, to: path, hashed: true)

        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let dirAttributes = try FileManager.default.attributesOfItem(atPath: dir + "/new/.ssh")
        #expect((dirAttributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)

        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4 && lines[3].isEmpty)
        #expect(lines[0] == "box.example.com ssh-ed25519 \(Base64.encode(edA))")
        #expect(lines[1] == "[127.0.0.1]:2222 ssh-ed25519 \(Base64.encode(edB))")
        #expect(lines[2].hasPrefix("|1|") && !lines[2].contains("hidden"))

        let kh = try KnownHosts(files: [path])
        #expect(kh.skippedLines.isEmpty)
        #expect(kh.check(host: "box.example.com", port: 22, keyType: "ssh-ed25519", key: edA) == .match(kh.entries[0]))
        #expect(kh.check(host: "127.0.0.1", port: 2222, keyType: "ssh-ed25519", key: edB) == .match(kh.entries[1]))
        #expect(kh.check(host: "HIDDEN.example", port: 22, keyType: "ssh-rsa", key: rsaA) == .match(kh.entries[2]))
        #expect(kh.check(host: "hidden.example", port: 23, keyType: "ssh-rsa", key: rsaA) == .unknown(otherKeyTypes: []))
    }

    @Test func appendAddsMissingFinalNewline() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = dir + "/known_hosts"
        try KeyFixtures.write(line("first", "ssh-ed25519", edA), to: path)  // no trailing newline
        try KnownHosts.append(host: "second", port: 22, keyType: "ssh-ed25519", key: edB, to: path)
        let kh = try KnownHosts(files: [path])
        #expect(kh.entries.map(\.hostPatterns) == ["first", "second"])
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasSuffix("\n"))
    }

    @Test func appendRefusesNamesThatWouldCorruptTheFile() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        for bad in ["", "a b", "a,b", "@revoked", "#x", "|1|x"] {
            #expect(throws: KnownHostsError.self) {
                try KnownHosts.append(host: bad, port: 22, keyType: "ssh-ed25519", key: edA, to: dir + "/kh")
            }
        }
        #expect(throws: KnownHostsError.self) {
            try KnownHosts.append(host: "ok", port: 22, keyType: "ssh ed25519", key: edA, to: dir + "/kh")
        }
    }

    // MARK: Cross-checks with OpenSSH's own tools

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func matchesNamesHashedBySSHKeygen() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let keyPath = try KeyFixtures.generateKey(in: dir, name: "host_ed25519", type: "ed25519")
        let key = try KeyFixtures.readPublicKey(keyPath + ".pub")
        let path = dir + "/known_hosts"
        try KeyFixtures.write("""
            server.example.org \(key.type) \(key.base64)
            [127.0.0.1]:2222 \(key.type) \(key.base64)

            """, to: path)
        try KeyFixtures.run("ssh-keygen", ["-H", "-f", path])
        let hashedText = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!hashedText.contains("server.example.org") && !hashedText.contains("127.0.0.1"))

        let kh = try KnownHosts(files: [path])
        #expect(kh.entries.count == 2)
        #expect(kh.entries.allSatisfy { $0.hostPatterns.hasPrefix("|1|") })
        #expect(kh.check(host: "server.example.org", port: 22, keyType: key.type, key: key.blob) == .match(kh.entries[0]))
        #expect(kh.check(host: "127.0.0.1", port: 2222, keyType: key.type, key: key.blob) == .match(kh.entries[1]))
        #expect(kh.check(host: "127.0.0.1", port: 22, keyType: key.type, key: key.blob) == .unknown(otherKeyTypes: []))
        #expect(kh.check(host: "server.example.net", port: 22, keyType: key.type, key: key.blob) == .unknown(otherKeyTypes: []))
    }

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func sshKeygenFindsNamesWeHashed() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let keyPath = try KeyFixtures.generateKey(in: dir, name: "k", type: "ecdsa")
        let key = try KeyFixtures.readPublicKey(keyPath + ".pub")
        let path = dir + "/known_hosts"
        try KnownHosts.append(host: "10.1.2.3", port: 2222, keyType: key.type, key: key.blob, to: path, hashed: true)
        try KnownHosts.append(host: "plain.example", port: 22, keyType: key.type, key: key.blob, to: path)
        // `ssh-keygen -F` prints the lines it finds for a name (exit 1 when none).
        let found = try KeyFixtures.run("ssh-keygen", ["-F", "[10.1.2.3]:2222", "-f", path])
        #expect(found.contains("|1|") && found.contains(key.base64))
        let plain = try KeyFixtures.run("ssh-keygen", ["-F", "plain.example", "-f", path])
        #expect(plain.contains("plain.example \(key.type) \(key.base64)"))
    }

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func fingerprintMatchesSSHKeygen() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        for type in ["ed25519", "ecdsa", "rsa"] {
            let keyPath = try KeyFixtures.generateKey(in: dir, name: "id_\(type)", type: type)
            let key = try KeyFixtures.readPublicKey(keyPath + ".pub")
            // "256 SHA256:abc... comment (ED25519)"
            let output = try KeyFixtures.run("ssh-keygen", ["-l", "-E", "sha256", "-f", keyPath + ".pub"])
            let printed = output.split(separator: " ").first(where: { $0.hasPrefix("SHA256:") }).map(String.init)
            #expect(Fingerprint.sha256(key.blob) == printed, "\(type)")
        }
    }
}
