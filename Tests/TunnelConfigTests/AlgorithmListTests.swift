import Testing
@testable import TunnelConfig

/// `Ciphers`, `MACs`, `KexAlgorithms`, `HostKeyAlgorithms`: OpenSSH's list syntax (ssh_config(5)), parsed, and laid
/// over a default order and a supported set as OpenSSH's kex_assemble_names does.
@Suite("Algorithm lists")
struct AlgorithmListTests {
    static let supported = ["aes128-ctr", "aes192-ctr", "aes256-ctr", "aes256-cbc", "aes128-cbc", "3des-cbc"]
    static let defaults = ["aes128-ctr", "aes192-ctr", "aes256-ctr", "aes256-cbc", "aes128-cbc", "3des-cbc"]

    func applied(_ text: String) throws -> (names: [String], unsupported: [String]) {
        let list = try #require(AlgorithmList(kind: .cipher, text: text))
        return list.applied(defaults: Self.defaults, supported: Self.supported)
    }

    @Test("a plain list replaces the default, in its own order; unsupported names are reported and dropped")
    func replace() throws {
        #expect(try applied("aes256-ctr").names == ["aes256-ctr"])
        #expect(try applied("aes256-ctr,aes128-ctr") == (["aes256-ctr", "aes128-ctr"], []))
        let mixed = try applied("chacha20-poly1305@openssh.com,aes192-ctr,rot13")
        #expect(mixed.names == ["aes192-ctr"])
        #expect(mixed.unsupported == ["chacha20-poly1305@openssh.com", "rot13"])
        #expect(try applied("nosuch,rot13").names.isEmpty)
    }

    @Test("+ appends, - removes (patterns), ^ puts first; repeats keep their first place")
    func operators() throws {
        #expect(try applied("+3des-cbc").names == Self.defaults)
        #expect(try applied("-aes*-cbc,3des-cbc").names == ["aes128-ctr", "aes192-ctr", "aes256-ctr"])
        #expect(try applied("^aes256-ctr").names == ["aes256-ctr", "aes128-ctr", "aes192-ctr", "aes256-cbc", "aes128-cbc", "3des-cbc"])
        #expect(try applied("-nosuch").unsupported.isEmpty, "removing what is not there is harmless")
        #expect(try applied("-*").names.isEmpty)
    }

    @Test("patterns stand for every supported name they match, in the supported order")
    func patterns() throws {
        #expect(try applied("aes*-ctr").names == ["aes128-ctr", "aes192-ctr", "aes256-ctr"])
        #expect(try applied("aes256-???,aes128*").names == ["aes256-ctr", "aes256-cbc", "aes128-ctr", "aes128-cbc"])
        #expect(try applied("+blowfish*").unsupported == ["blowfish*"])
    }

    @Test("parsed from the file, first line of each keyword wins, as written for messages")
    func parsed() throws {
        let config = try parse(
            "Host db",
            "  Ciphers ^aes256-ctr",
            "  MACs -hmac-sha1*",
            "  KexAlgorithms curve25519-sha256",
            "  HostKeyAlgorithms +ssh-rsa",
            "Host *",
            "  Ciphers aes128-ctr"
        )
        let db = config.resolve(host: "db")
        let ciphers = try #require(db.algorithmLists[.cipher])
        #expect(ciphers.operation == .putFirst && ciphers.patterns == ["aes256-ctr"])
        #expect(ciphers.location == SourceLocation(file: "t.conf", line: 2))
        #expect(ciphers.description == "^aes256-ctr")
        #expect(db.algorithmLists[.mac]?.operation == .remove)
        #expect(db.algorithmLists[.keyExchange]?.patterns == ["curve25519-sha256"])
        #expect(db.algorithmLists[.hostKey]?.operation == .append)
        #expect(config.resolve(host: "other").algorithmLists[.cipher]?.patterns == ["aes128-ctr"])
        #expect(config.resolve(host: "other").algorithmLists[.mac] == nil)
        #expect(config.warnings.isEmpty, "acted on, so not warned about as ignored")
    }

    @Test("an empty name is refused with file:line, as OpenSSH refuses the file")
    func emptyNames() {
        #expect(errors("Ciphers aes128-ctr,,aes256-ctr").first?.hasPrefix("t.conf:1: Ciphers: bad list") == true)
        #expect(errors("MACs +").first?.hasPrefix("t.conf:1: MACs: bad list") == true)
        #expect(errors("KexAlgorithms a b") == ["t.conf:1: KexAlgorithms: takes one argument, found 2: \"a b\""])
    }

    @Test("patterns only where OpenSSH takes them: in a list that removes, and in HostKeyAlgorithms")
    func patternsWhereOpenSSHTakesThem() {
        #expect(errors("Ciphers aes*-ctr").first?.hasPrefix("t.conf:1: Ciphers: \"aes*-ctr\" is a pattern") == true)
        #expect(errors("MACs +hmac-sha2-?12").first?.hasPrefix("t.conf:1: MACs: \"hmac-sha2-?12\" is a pattern") == true)
        #expect(errors("KexAlgorithms ^curve*").first?.hasPrefix("t.conf:1: KexAlgorithms: \"curve*\" is a pattern") == true)
        #expect(errors("Ciphers -*cbc").isEmpty)
        #expect(errors("HostKeyAlgorithms ssh-ed25519*").isEmpty)
    }
}
