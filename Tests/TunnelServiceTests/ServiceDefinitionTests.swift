import Foundation
import Testing
import TunnelService

/// What `tunnel service install` writes, byte by byte where it matters; systemd-analyze checks the real file in
/// CLITests (OpsCommandTests).
@Suite("ServiceDefinition")
struct ServiceDefinitionTests {
    static func definition(_ manager: ServiceManager, _ scope: ServiceScope, config: String = "/home/ann/tunnels.conf",
                           user: String? = "ann") throws -> ServiceDefinition {
        try ServiceDefinition(manager: manager, scope: scope, executable: "/usr/local/bin/tunnel", configPath: config,
                              systemUser: user, home: "/home/ann")
    }

    static func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    @Test func systemdUserUnit() throws {
        let service = try Self.definition(.systemd, .user)
        let lines = Self.lines(service.contents)
        for expected in ["Type=notify", "ExecStart=/usr/local/bin/tunnel up /home/ann/tunnels.conf",
                         "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "NoNewPrivileges=yes",
                         "WantedBy=default.target", "After=network-online.target"] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
        // A user manager cannot set up namespaces without unprivileged user namespaces; ProtectHome would hide ~/.ssh.
        #expect(!lines.contains { $0.hasPrefix("User=") || $0.hasPrefix("ProtectSystem=") || $0.hasPrefix("ProtectHome=") || $0.hasPrefix("PrivateTmp=") })
        #expect(service.path == "/home/ann/.config/systemd/user/tunnel.service")
        #expect(service.enableCommand == "systemctl --user daemon-reload && systemctl --user enable --now tunnel.service")
        #expect(service.disableArguments == ["systemctl", "--user", "disable", "--now", "tunnel.service"])
        #expect(service.logsCommand == "journalctl --user -u tunnel.service -f")
        #expect(lines.firstIndex(of: "[Unit]")! < lines.firstIndex(of: "[Service]")!)
        #expect(lines.firstIndex(of: "[Service]")! < lines.firstIndex(of: "[Install]")!)
    }

    @Test func systemdSystemUnitRunsAsTheInstallingUser() throws {
        let service = try Self.definition(.systemd, .system)
        let lines = Self.lines(service.contents)
        for expected in ["User=ann", "ProtectSystem=full", "PrivateTmp=yes", "NoNewPrivileges=yes", "WantedBy=multi-user.target"] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
        #expect(!lines.contains { $0.hasPrefix("ProtectHome=") }, "the user's keys must stay readable")
        #expect(service.path == "/etc/systemd/system/tunnel.service")
        #expect(service.enableCommand == "sudo systemctl daemon-reload && sudo systemctl enable --now tunnel.service")
        // root: no User= line (systemd's default).
        #expect(!Self.lines(try Self.definition(.systemd, .system, user: "root").contents).contains { $0.hasPrefix("User=") })
    }

    @Test func systemdQuotesWhatItMust() throws {
        #expect(ServiceDefinitionTests.execStart(config: "/srv/my tunnels/a.conf") == #"ExecStart=/usr/local/bin/tunnel up "/srv/my tunnels/a.conf""#)
        // % starts a specifier and $ a variable in systemd command lines: both doubled.
        #expect(ServiceDefinitionTests.execStart(config: "/srv/100%/$HOME.conf") == "ExecStart=/usr/local/bin/tunnel up /srv/100%%/$$HOME.conf")
        #expect(ServiceDefinitionTests.execStart(config: #"/srv/a"b\c.conf"#) == #"ExecStart=/usr/local/bin/tunnel up "/srv/a\"b\\c.conf""#)
    }

    static func execStart(config: String) -> String? {
        let service = try? definition(.systemd, .user, config: config)
        return service.flatMap { lines($0.contents).first { $0.hasPrefix("ExecStart=") } }
    }

    @Test func upOptionsFollowTheConfig() throws {
        let systemd = try ServiceDefinition(manager: .systemd, scope: .user, executable: "/bin/tunnel", configPath: "/t.conf",
                                            upOptions: ["--metrics", "127.0.0.1:9469"], home: "/h")
        #expect(Self.lines(systemd.contents).contains("ExecStart=/bin/tunnel up /t.conf --metrics 127.0.0.1:9469"))
        let launchd = try ServiceDefinition(manager: .launchd, scope: .user, executable: "/bin/tunnel", configPath: "/t.conf",
                                            upOptions: ["--metrics", "[::1]:9469"], home: "/h")
        let plist = try PropertyListSerialization.propertyList(from: Data(launchd.contents.utf8), format: nil) as? [String: Any]
        #expect(plist?["ProgramArguments"] as? [String] == ["/bin/tunnel", "up", "/t.conf", "--metrics", "[::1]:9469"])
    }

    @Test func launchdPropertyList() throws {
        let service = try Self.definition(.launchd, .user, config: "/Users/ann/my <tunnels>.conf")
        #expect(service.path == "/home/ann/Library/LaunchAgents/org.tunnel.tunnel.plist")
        let plist = try #require(try PropertyListSerialization.propertyList(from: Data(service.contents.utf8), format: nil) as? [String: Any])
        #expect(plist["Label"] as? String == "org.tunnel.tunnel")
        #expect(plist["ProgramArguments"] as? [String] == ["/usr/local/bin/tunnel", "up", "/Users/ann/my <tunnels>.conf"])
        #expect(plist["RunAtLoad"] as? Bool == true)
        #expect((plist["KeepAlive"] as? [String: Any])?["SuccessfulExit"] as? Bool == false, "restart on failure only")
        #expect(plist["StandardErrorPath"] as? String == "/home/ann/Library/Logs/tunnel.log")
        #expect(plist["UserName"] == nil)
        #expect(service.contents.contains("&lt;tunnels&gt;"), "XML-escaped")
        #expect(service.enableCommand == "launchctl bootstrap gui/$(id -u) /home/ann/Library/LaunchAgents/org.tunnel.tunnel.plist")

        let system = try Self.definition(.launchd, .system)
        let systemPlist = try #require(try PropertyListSerialization.propertyList(from: Data(system.contents.utf8), format: nil) as? [String: Any])
        #expect(systemPlist["UserName"] as? String == "ann")
        #expect(system.path == "/Library/LaunchDaemons/org.tunnel.tunnel.plist")
        #expect(system.disableArguments == ["launchctl", "bootout", "system/org.tunnel.tunnel"])
    }

    @Test func refusesRelativePathsAndOddNames() {
        #expect(throws: ServiceDefinition.Problem.notAbsolute("tunnels.conf")) {
            try ServiceDefinition(manager: .systemd, scope: .user, executable: "/bin/tunnel", configPath: "tunnels.conf", home: "/h")
        }
        #expect(throws: ServiceDefinition.Problem.badName("a/b")) {
            try ServiceDefinition(manager: .systemd, scope: .user, executable: "/bin/tunnel", configPath: "/t.conf", name: "a/b", home: "/h")
        }
        #expect(throws: Never.self) {
            try ServiceDefinition(manager: .systemd, scope: .user, executable: "/bin/tunnel", configPath: "/t.conf", name: "tunnel-work", home: "/h")
        }
    }

    @Test func defaultConfigPath() {
        #expect(ServiceDefinition.defaultConfigPath(environment: ["XDG_CONFIG_HOME": "/x"], home: "/h") == "/x/tunnel/tunnels.conf")
        #expect(ServiceDefinition.defaultConfigPath(environment: [:], home: "/h") == "/h/.config/tunnel/tunnels.conf")
        // A relative XDG_CONFIG_HOME is invalid (XDG Base Directory spec): ignored.
        #expect(ServiceDefinition.defaultConfigPath(environment: ["XDG_CONFIG_HOME": "rel"], home: "/h") == "/h/.config/tunnel/tunnels.conf")
    }
}
