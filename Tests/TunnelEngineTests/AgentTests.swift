import Testing
import TunnelConfig
@testable import TunnelEngine

@Suite("ssh-agent: where it is, and its wire format")
struct AgentTests {
    @Test("IdentityAgent resolves like OpenSSH: default SSH_AUTH_SOCK, none, another variable, a path")
    func socketResolution() {
        let env = ["SSH_AUTH_SOCK": "/run/agent.sock", "MY_AGENT": "/run/mine.sock", "EMPTY": ""]
        #expect(ConnectionSettings.agentSocket(nil, environment: env) == "/run/agent.sock")
        #expect(ConnectionSettings.agentSocket(nil, environment: [:]) == nil)
        #expect(ConnectionSettings.agentSocket(.disabled, environment: env) == nil)
        #expect(ConnectionSettings.agentSocket(.environment("MY_AGENT"), environment: env) == "/run/mine.sock")
        #expect(ConnectionSettings.agentSocket(.environment("EMPTY"), environment: env) == nil)
        #expect(ConnectionSettings.agentSocket(.socket("/tmp/a.sock"), environment: env) == "/tmp/a.sock")
    }

    @Test("the bare signature is the second string of the agent's signature blob; a short blob gives none")
    func bareSignature() {
        var blob: [UInt8] = []
        AgentWireReader.appendString(Array("ssh-ed25519".utf8), to: &blob)
        AgentWireReader.appendString([1, 2, 3], to: &blob)
        #expect(SSHAgentClient.bareSignature(blob) == [1, 2, 3])
        #expect(SSHAgentClient.bareSignature(Array(blob.dropLast())) == nil)
        #expect(SSHAgentClient.bareSignature([]) == nil)
    }

    @Test("the failure message counts refused and skipped agent keys")
    func failureWording() {
        let attempt = AuthenticationAttempt(identityFile: "agent", problem: .agentKeys(refused: 2, notOffered: 1))
        #expect(attempt.description == "agent: 2 keys refused by the server; 1 key not offered (IdentitiesOnly yes, and no IdentityFile's .pub matches)")
    }
}
