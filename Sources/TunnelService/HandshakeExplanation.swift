import TunnelEngine

/// `tunnel check --connect` in words: what each step of the SSH handshake did for one host, so the output teaches
/// what SSH does (key exchange, server identity, encryption and integrity each way, authentication). Pure.
public enum HandshakeExplanation {
    public static func text(_ result: HostCheckResult) -> String {
        var out = "\(result.host): \(result.user)@\(bracketed(result.hostName)):\(result.port)"
        out += result.jumpHosts.isEmpty ? "\n" : " via \(result.jumpHosts.map(\.host).joined(separator: ", "))\n"
        // [ProxyJump] Each hop first: the connection to the next host is a channel of the hop's own session.
        for hop in result.jumpHosts {
            out += "  jump host \(hop.host) (\(hop.user)@\(bracketed(hop.hostName)):\(hop.port)): "
            if let facts = hop.session {
                let credential = facts.identityFile.isEmpty ? "" : " with \(facts.identityFile)"
                out += "up: server identity \(facts.hostKeyType) \(facts.hostKeyFingerprint), \(hostKeyWhere(facts.hostKeyStatus)); "
                    + "\(facts.algorithms.keyExchange), \(facts.algorithms.cipherClientToServer); "
                    + "authenticated by \(facts.authenticationMethod)\(credential); "
                    + "then a direct-tcpip channel through it to the next host\n"
            } else if let error = hop.error {
                out += "FAILED: \(error)\n"
            } else {
                out += "not tried (an earlier hop failed)\n"
            }
        }
        guard let facts = result.session, result.error == nil else {
            out += "  FAILED: \(result.error ?? "no session")\n"
            return out
        }
        let methods = facts.algorithms
        out += "  key exchange: \(methods.keyExchange): \(keyExchangeSummary(methods.keyExchange))\n"
        out += "  server identity: \(facts.hostKeyType) \(facts.hostKeyFingerprint), \(hostKeyWhere(facts.hostKeyStatus));"
            + " the server signed the exchange with this key, proving it holds the private half\n"
        out += "  encryption: \(eachWay(methods.cipherClientToServer, methods.cipherServerToClient))\n"
        let macOut = integrity(cipher: methods.cipherClientToServer, mac: methods.macClientToServer)
        let macIn = integrity(cipher: methods.cipherServerToClient, mac: methods.macServerToClient)
        out += "  integrity (MAC): \(eachWay(macOut, macIn))\n"
        let compression = eachWay(methods.compressionClientToServer.isEmpty ? "none" : methods.compressionClientToServer,
                                  methods.compressionServerToClient.isEmpty ? "none" : methods.compressionServerToClient)
        out += "  compression: \(compression)\n"
        let credential = facts.identityFile.isEmpty ? "" : " with \(facts.identityFile)"
        out += "  authentication: \(facts.authenticationMethod)\(credential): accepted\n"
        out += "  passed: connected, authenticated, no forwards opened, disconnected\n"
        return out
    }

    /// The last line of the text output: how many hosts passed.
    public static func summary(_ results: [HostCheckResult]) -> String {
        let passed = results.filter(\.passed).count
        return "\(passed) of \(results.count) host\(results.count == 1 ? "" : "s") passed\n"
    }

    /// How both sides came to hold the same session keys without either sending them.
    static func keyExchangeSummary(_ method: String) -> String {
        let how: String
        if method.hasPrefix("curve25519") || method.hasPrefix("ecdh-") {
            how = "elliptic-curve Diffie-Hellman: each side made a one-time key pair and sent only its public half"
        } else if method.contains("group-exchange") {
            how = "Diffie-Hellman in a group the server chose: each side sent only a public value g^x mod p"
        } else if method.hasPrefix("diffie-hellman") {
            how = "Diffie-Hellman in a fixed group: each side sent only a public value g^x mod p"
        } else {
            how = "each side sent only public values"
        }
        return how + "; each combined its own secret with the other's public value into the same shared secret,"
            + " from which both derived the session keys, so the keys never crossed the network"
    }

    /// "found in known_hosts FILE:LINE", "new: recorded in FILE", "NOT checked".
    static func hostKeyWhere(_ status: String) -> String {
        let knownPrefix = "known_hosts "
        if status.hasPrefix(knownPrefix) { return "found in \(status.dropFirst(knownPrefix.count))" }
        if status == "not checked" { return "NOT checked (StrictHostKeyChecking no, and nowhere to record it)" }
        return status
    }

    /// The MAC of one direction, or "built into the cipher" for AEAD ciphers, which authenticate what they
    /// encrypt (libssh2 may still name a MAC for them; it is not used).
    static func integrity(cipher: String, mac: String) -> String {
        if isAEAD(cipher) { return "built into the cipher (\(cipher) authenticates what it encrypts)" }
        return mac.isEmpty ? "none" : mac
    }

    static func isAEAD(_ cipher: String) -> Bool { NegotiatedAlgorithms.isAEAD(cipher) }

    /// "X each way" when both directions agree, else "X client->server, Y server->client".
    public static func eachWay(_ clientToServer: String, _ serverToClient: String) -> String {
        NegotiatedAlgorithms.eachWay(clientToServer, serverToClient)
    }

    private static func bracketed(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }
}
