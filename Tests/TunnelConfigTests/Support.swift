import TunnelConfig

/// A fixed user and machine, so expectations do not depend on who runs the tests.
let testContext = ConfigContext(
    homeDirectory: "/home/alice",
    userName: "alice",
    environment: ["KEYDIR": "/keys", "PORT": "8443"],
    localHostName: "box.example.com",
    userID: 1000
)

/// Parses `text` (joined lines) as "t.conf" with the fixed context.
func parse(_ lines: String...) throws(ConfigErrors) -> TunnelConfigFile {
    try TunnelConfigFile.parse(text: lines.joined(separator: "\n"), file: "t.conf", context: testContext)
}

/// The error messages (with locations) that parsing `text` produces; empty if it parses.
func errors(_ lines: String...) -> [String] {
    do {
        _ = try TunnelConfigFile.parse(text: lines.joined(separator: "\n"), file: "t.conf", context: testContext)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}
