import Testing
import TunnelConfig
@testable import TunnelEngine

/// Which algorithms a session offers, fed what libssh2 1.10.0, 1.11.0 and 1.11.1 report (OpenSSL builds; each
/// library's own order, from its crypt.c).
@Suite("Algorithm preference")
struct AlgorithmPreferenceTests {
    static let ciphers110 = ["aes128-ctr", "aes192-ctr", "aes256-ctr", "aes256-cbc", "rijndael-cbc@lysator.liu.se",
                             "aes192-cbc", "aes128-cbc", "blowfish-cbc", "arcfour128", "arcfour", "cast128-cbc", "3des-cbc"]
    static let ciphers111 = ["aes256-gcm@openssh.com", "aes128-gcm@openssh.com"] + ciphers110
    static let ciphers1111 = ["chacha20-poly1305@openssh.com"] + ciphers111
    static let macs110 = ["hmac-sha2-256", "hmac-sha2-512", "hmac-sha1", "hmac-sha1-96", "hmac-md5", "hmac-md5-96",
                          "hmac-ripemd160", "hmac-ripemd160@openssh.com"]
    static let macs111 = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha1-etm@openssh.com"] + macs110

    static func supported(_ ciphers: [String], _ macs: [String] = macs110) -> [AlgorithmKind: [String]] {
        [.cipher: ciphers, .mac: macs, .keyExchange: ["curve25519-sha256", "ecdh-sha2-nistp256"],
         .hostKey: ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]]
    }

    static func preference(_ ciphers: [String], _ lines: [AlgorithmList] = []) -> AlgorithmPreference {
        AlgorithmPreference(lists: Dictionary(uniqueKeysWithValues: lines.map { ($0.kind, $0) }),
                            supported: supported(ciphers), libraryName: "libssh2 x")
    }

    static func list(_ kind: AlgorithmKind, _ text: String, line: Int = 7) -> AlgorithmList {
        AlgorithmList(kind: kind, text: text, location: SourceLocation(file: "t.conf", line: line))!
    }

    @Test("libssh2 1.10: AES-CTR first, nothing AEAD; the rest in libssh2's order; MACs left to libssh2")
    func libssh2_1_10() {
        let offered = Self.preference(Self.ciphers110).offered
        #expect(offered[.cipher]?.prefix(3) == ["aes128-ctr", "aes192-ctr", "aes256-ctr"])
        #expect(offered[.cipher]?.count == Self.ciphers110.count)
        #expect(offered[.mac] == nil && offered[.keyExchange] == nil && offered[.hostKey] == nil)
        #expect(AlgorithmPreference.missingCiphers(supported: Self.ciphers110)
            == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
    }

    @Test("libssh2 1.11: AES-GCM first, aes128 before aes256")
    func libssh2_1_11() {
        let offered = Self.preference(Self.ciphers111).offered[.cipher] ?? []
        #expect(offered.prefix(3) == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr"])
        #expect(AlgorithmPreference.missingCiphers(supported: Self.ciphers111) == ["chacha20-poly1305@openssh.com"])
    }

    @Test("libssh2 1.11.1: AES-GCM, then chacha20-poly1305, then AES-CTR")
    func libssh2_1_11_1() {
        let offered = Self.preference(Self.ciphers1111).offered[.cipher] ?? []
        #expect(offered.prefix(4) == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                                      "chacha20-poly1305@openssh.com", "aes128-ctr"])
        #expect(Set(offered) == Set(Self.ciphers1111))
        #expect(AlgorithmPreference.missingCiphers(supported: Self.ciphers1111).isEmpty)
    }

    @Test("the config's lists are laid over tunnel's order and cut to what the library has")
    func configLists() {
        let pinned = Self.preference(Self.ciphers110, [Self.list(.cipher, "aes256-ctr"), Self.list(.mac, "hmac-sha2-512")])
        #expect(pinned.offered[.cipher] == ["aes256-ctr"])
        #expect(pinned.offered[.mac] == ["hmac-sha2-512"])
        #expect(pinned.errors.isEmpty && pinned.warnings.isEmpty)
        // `^` on 1.11 goes before the AES-GCM default; `-` takes from tunnel's order.
        #expect(Self.preference(Self.ciphers111, [Self.list(.cipher, "^aes256-ctr")]).offered[.cipher]?.prefix(2)
            == ["aes256-ctr", "aes128-gcm@openssh.com"])
        #expect(Self.preference(Self.ciphers111, [Self.list(.cipher, "-*gcm*")]).offered[.cipher]?.first == "aes128-ctr")
        let hostKeys = Self.preference(Self.ciphers110, [Self.list(.hostKey, "ssh-rsa,ssh-ed25519")])
        #expect(hostKeys.offered[.hostKey] == ["ssh-rsa", "ssh-ed25519"])
    }

    @Test("a list the library cannot serve is an error at its line; unknown names are warned about and dropped")
    func unusableLists() {
        let chacha = [Self.list(.cipher, "chacha20-poly1305@openssh.com", line: 4)]
        let onOld = Self.preference(Self.ciphers110, chacha)
        #expect(onOld.errors.map(\.description) == ["t.conf:4: Ciphers chacha20-poly1305@openssh.com: leaves nothing "
            + "libssh2 x supports (it has: \(Self.ciphers110.joined(separator: ",")))"])
        #expect(onOld.offered[.cipher] == nil, "nothing offered from that line")
        #expect(Self.preference(Self.ciphers1111, chacha).errors.isEmpty, "1.11.1 has it")
        let mixed = Self.preference(Self.ciphers110, [Self.list(.cipher, "aes128-gcm@openssh.com,aes128-ctr", line: 5)])
        #expect(mixed.offered[.cipher] == ["aes128-ctr"])
        #expect(mixed.warnings.map(\.description) == ["t.conf:5: Ciphers: libssh2 x does not support aes128-gcm@openssh.com; ignored"])
        #expect(Self.preference(Self.ciphers110, [Self.list(.mac, "-*")]).errors.count == 1)
    }

    @Test("the session-up summary names every algorithm each way, an AEAD cipher's MAC as implicit")
    func summary() {
        var algorithms = NegotiatedAlgorithms()
        algorithms.keyExchange = "curve25519-sha256"
        algorithms.hostKey = "ssh-ed25519"
        algorithms.cipherClientToServer = "aes128-ctr"
        algorithms.cipherServerToClient = "aes256-ctr"
        algorithms.macClientToServer = "hmac-sha2-256"
        algorithms.macServerToClient = "hmac-sha2-256"
        #expect(algorithms.summary == "kex curve25519-sha256, host key ssh-ed25519, cipher aes128-ctr client->server, "
            + "aes256-ctr server->client, MAC hmac-sha2-256 each way")
        algorithms.cipherClientToServer = "aes128-gcm@openssh.com"
        algorithms.cipherServerToClient = "aes128-gcm@openssh.com"
        #expect(algorithms.summary.hasSuffix("cipher aes128-gcm@openssh.com each way, MAC implicit each way"))
    }

    @Test("the linked libssh2 reports a cipher list, and tunnel's first choice is in it")
    func linked() {
        let ciphers = AlgorithmPreference.linkedSupport[.cipher] ?? []
        #expect(!ciphers.isEmpty)
        #expect(AlgorithmPreference.linked([:]).offered[.cipher]?.first.map(ciphers.contains) == true)
    }
}
