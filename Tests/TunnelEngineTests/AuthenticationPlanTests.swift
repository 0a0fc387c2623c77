import Testing
import TunnelConfig
@testable import TunnelEngine

@Suite("Authentication order")
struct AuthenticationPlanTests {
    func configured(_ preferred: [AuthenticationMethod]? = nil, publickey: Bool = true, kbd: Bool = true,
                    password: Bool = true, prompts: Int = 3) -> [AuthenticationMethod] {
        AuthenticationPlan.configured(preferred: preferred, publickey: publickey, keyboardInteractive: kbd,
                                      password: password, passwordPrompts: prompts)
    }

    @Test func openSSHDefaultOrderKeepsWhatTunnelCanDo() {
        #expect(configured() == [.publickey, .keyboardInteractive, .password])
    }

    @Test func preferredAuthenticationsDecidesTheOrder() {
        #expect(configured([.password, .gssapiWithMIC, .publickey]) == [.password, .publickey])
        #expect(configured([.keyboardInteractive, .password, .keyboardInteractive]) == [.keyboardInteractive, .password])
    }

    @Test func switchedOffMethodsAreLeftOut() {
        #expect(configured(publickey: false) == [.keyboardInteractive, .password])
        #expect(configured(kbd: false, password: false) == [.publickey])
        #expect(configured(prompts: 0) == [.publickey], "NumberOfPasswordPrompts 0: nothing that asks")
        #expect(configured([.password], password: false).isEmpty)
    }

    @Test func onlyWhatTheServerOffers() {
        let all = configured()
        #expect(AuthenticationPlan.toTry(configured: all, offered: ["publickey", "password"]) == [.publickey, .password])
        #expect(AuthenticationPlan.toTry(configured: [.password, .publickey], offered: ["publickey", "keyboard-interactive", "password"]) == [.password, .publickey])
        #expect(AuthenticationPlan.toTry(configured: all, offered: ["gssapi-with-mic"]).isEmpty)
    }

    @Test func theFinalErrorListsWhatWasTried() {
        let failure = AuthenticationFailure(peer: "me@db:22", attempts: [
            AuthenticationAttempt(identityFile: "/k/id_ed25519", problem: .refusedByServer(user: "me")),
            AuthenticationAttempt(identityFile: "", problem: .answersRefused(tries: 3), method: .keyboardInteractive),
        ])
        #expect(failure.summary == "tried publickey (/k/id_ed25519), keyboard-interactive")
        #expect(failure.description.hasPrefix("authentication failed for me@db:22: tried publickey (/k/id_ed25519), keyboard-interactive: all refused by the server ("))
        let none = AuthenticationFailure(peer: "me@db:22", attempts: [], offered: ["gssapi-with-mic"], allowed: [.publickey])
        #expect(none.description.contains("the server offers gssapi-with-mic, none of them allowed by the config"))
        let keysOnly = AuthenticationFailure(peer: "me@db:22", attempts: [
            AuthenticationAttempt(identityFile: "/k/a", problem: .refusedByServer(user: "me")),
        ])
        #expect(keysOnly.description == "authentication failed for me@db:22: /k/a: the server refused this key (is it in the server's authorized_keys for me?)")
    }
}
