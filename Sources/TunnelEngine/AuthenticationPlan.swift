import TunnelConfig

/// Which user-authentication methods a session tries, and in which order: `PreferredAuthentications` when set,
/// otherwise OpenSSH's default order; only those the config allows (`PubkeyAuthentication`,
/// `KbdInteractiveAuthentication`, `PasswordAuthentication`, `NumberOfPasswordPrompts 0` switching off the two that
/// ask), only those tunnel implements, and at connect time only those the server offers. Pure, so it is unit-tested
/// without a server.
public enum AuthenticationPlan {
    /// The methods tunnel can carry out (GSSAPI and host-based are OpenSSH's, not libssh2's).
    public static let implemented: Set<AuthenticationMethod> = [.publickey, .keyboardInteractive, .password]

    /// The configured order, before the server is asked.
    public static func configured(preferred: [AuthenticationMethod]?, publickey: Bool, keyboardInteractive: Bool,
                                  password: Bool, passwordPrompts: Int) -> [AuthenticationMethod] {
        var seen = Set<AuthenticationMethod>()
        return (preferred ?? AuthenticationMethod.openSSHDefaultOrder).filter { method in
            guard implemented.contains(method), seen.insert(method).inserted else { return false }
            switch method {
            case .publickey: return publickey
            case .keyboardInteractive: return keyboardInteractive && passwordPrompts > 0
            case .password: return password && passwordPrompts > 0
            default: return false
            }
        }
    }

    /// The configured methods the server offers (`offered`: the names in its SSH_MSG_USERAUTH_FAILURE list), in
    /// the configured order.
    public static func toTry(configured: [AuthenticationMethod], offered: [String]) -> [AuthenticationMethod] {
        let names = Set(offered)
        return configured.filter { names.contains($0.rawValue) }
    }
}

/// A question for a person during authentication: a password, or one prompt of a keyboard-interactive round.
/// Only known while the session authenticates (the server writes keyboard-interactive prompts), so the engine asks
/// through `ConnectionSettings.askSecret`, from a pool thread, one question at a time.
public struct SecretRequest: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case password
        case keyboardInteractive
    }

    public var kind: Kind
    /// "root@db.example.com:22", for the front end's own wording.
    public var peer: String
    /// What to show: "root@db.example.com's password: ", or the server's prompt as it sent it ("Password: ").
    public var prompt: String
    /// Whether the answer may be shown while typed (the server says so for each keyboard-interactive prompt).
    public var echo: Bool
    /// The server's instruction for a keyboard-interactive round (often empty).
    public var instruction: String
    /// 1 for the first time this session asks for this method, 2 after one wrong answer, ...
    public var attempt: Int

    public init(kind: Kind, peer: String, prompt: String, echo: Bool = false, instruction: String = "", attempt: Int = 1) {
        self.kind = kind
        self.peer = peer
        self.prompt = prompt
        self.echo = echo
        self.instruction = instruction
        self.attempt = attempt
    }
}
