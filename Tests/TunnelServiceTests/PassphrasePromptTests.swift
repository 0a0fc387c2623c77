import Testing
import TunnelConfig
@testable import TunnelService

/// Who gets asked for a key's passphrase: OpenSSH's SSH_ASKPASS rules, and never anyone when nobody can answer.
@Suite("PassphrasePrompt")
struct PassphrasePromptTests {
    @Test func terminalWhenThereIsOne() {
        #expect(PassphrasePrompt.standard(environment: [:], hasTerminal: true)?.method == .terminal)
    }

    @Test func nobodyWithoutTerminalOrAskpass() {
        #expect(PassphrasePrompt.standard(environment: [:], hasTerminal: false) == nil)
        // SSH_ASKPASS alone needs a DISPLAY (or force), as in OpenSSH.
        #expect(PassphrasePrompt.standard(environment: ["SSH_ASKPASS": "/bin/ap"], hasTerminal: false) == nil)
    }

    @Test func askpassRules() {
        let force = ["SSH_ASKPASS": "/bin/ap", "SSH_ASKPASS_REQUIRE": "force"]
        #expect(PassphrasePrompt.standard(environment: force, hasTerminal: true)?.method == .askpass(program: "/bin/ap"))
        let display = ["SSH_ASKPASS": "/bin/ap", "DISPLAY": ":0"]
        #expect(PassphrasePrompt.standard(environment: display, hasTerminal: false)?.method == .askpass(program: "/bin/ap"))
        #expect(PassphrasePrompt.standard(environment: display, hasTerminal: true)?.method == .terminal)
        let prefer = display.merging(["SSH_ASKPASS_REQUIRE": "prefer"]) { $1 }
        #expect(PassphrasePrompt.standard(environment: prefer, hasTerminal: true)?.method == .askpass(program: "/bin/ap"))
        let never = force.merging(["SSH_ASKPASS_REQUIRE": "never"]) { $1 }
        #expect(PassphrasePrompt.standard(environment: never, hasTerminal: false) == nil)
    }

    @Test func askpassOutputIsThePassphrase() {
        let prompt = PassphrasePrompt(method: .askpass(program: "/bin/echo"))
        // /bin/echo prints its argument (the prompt): the trailing newline is dropped, the rest kept.
        #expect(prompt.ask(forKey: "/k") == "Enter passphrase for key '/k': ")
        #expect(PassphrasePrompt(method: .askpass(program: "/bin/false")).ask(forKey: "/k") == nil)
        #expect(PassphrasePrompt(method: .askpass(program: "/nonexistent")).ask(forKey: "/k") == nil)
    }
}

@Suite("Settings tunnel parses but cannot honour yet")
struct UnsupportedSettingTests {
    func host(_ text: String) throws -> HostConfig {
        try TunnelConfigFile.parse(text: text, file: "t.conf").resolve(host: "h")
    }

    @Test func proxyJumpIsBroughtUpButALoopIsNot() throws {
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  ProxyJump jump\n  LocalForward 1 a:1\n")) == nil)
        let config = try TunnelConfigFile.parse(text: "Host h\n  LocalForward 1 a:1\nHost *\n  ProxyJump jump\n", file: "t.conf")
        let looped = config.resolve(host: "h")
        let reason = TunnelService.unsupportedSetting(looped)
        #expect(reason?.contains("ProxyJump loop") == true, "\(reason ?? "nil")")
    }

    @Test func proxyCommandIsNotBroughtUpNorConnectedToDirectly() throws {
        let reason = TunnelService.unsupportedSetting(try host("Host h\n  ProxyCommand nc %h %p\n  LocalForward 1 a:1\n"))
        #expect(reason?.contains("ProxyCommand \"nc %h %p\" is not supported yet") == true, "\(reason ?? "nil")")
        #expect(reason?.hasSuffix("not brought up") == true, "\(reason ?? "nil")")
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  ProxyCommand none\n  LocalForward 1 a:1\n")) == nil)
    }

    @Test func pubkeyOffIsFineWhilePasswordsArePossible() throws {
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  PubkeyAuthentication no\n  LocalForward 1 a:1\n")) == nil)
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  PubkeyAuthentication no\n  PreferredAuthentications password\n  LocalForward 1 a:1\n")) == nil)
    }

    @Test func noMethodLeftIsRefused() throws {
        let reasons = try [
            "Host h\n  PubkeyAuthentication no\n  PasswordAuthentication no\n  KbdInteractiveAuthentication no\n",
            "Host h\n  PreferredAuthentications gssapi-with-mic,hostbased\n",
            "Host h\n  PubkeyAuthentication no\n  NumberOfPasswordPrompts 0\n",
        ].map { TunnelService.unsupportedSetting(try host($0 + "  LocalForward 1 a:1\n")) }
        for reason in reasons {
            #expect(reason?.contains("no authentication method left (Host at t.conf:1)") == true, "\(reason ?? "nil")")
        }
    }

    @Test func onlyInactiveForwardsAreRefused() throws {
        // A remote forward to a Unix socket here is not served yet.
        let reason = TunnelService.unsupportedSetting(try host("Host h\n  RemoteForward 9000 /l.sock\n"))
        #expect(reason?.contains("RemoteForward kinds not supported yet (Unix sockets) (Host at t.conf:1)") == true, "\(reason ?? "nil")")
        #expect(reason?.contains("ssh -F t.conf -N h") == true)
    }

    @Test func aTCPRemoteForwardAloneIsEnough() throws {
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  RemoteForward 9000 localhost:3000\n")) == nil)
        // Remote dynamic forwarding (no target): a SOCKS proxy served from here.
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  RemoteForward 9000\n")) == nil)
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  RemoteForward 0 localhost:3000\n  RemoteForward /r.sock /l.sock\n")) == nil)
    }

    @Test func aHostWithOnlyADynamicForwardIsBroughtUp() throws {
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  DynamicForward 1080\n")) == nil)
    }

    @Test func aHostWithAProblemIsRefusedWithItsLine() throws {
        // A service name as a port is read by OpenSSH but looked up only when connecting: a problem of this host.
        let reason = TunnelService.unsupportedSetting(try host("Host h\n  Port ssh\n  LocalForward 1 a:1\n"))
        #expect(reason?.hasPrefix("t.conf:2: ") == true, "\(reason ?? "nil")")
        #expect(reason?.hasSuffix("not brought up") == true)
    }

    @Test func ordinaryHostsPass() throws {
        #expect(TunnelService.unsupportedSetting(try host("Host h\n  ProxyJump none\n  LocalForward 1 a:1\n")) == nil)
    }
}
