import TunnelEngine

/// Errors in the words a person at a terminal (or reading a service log) needs: the engine says what went wrong,
/// this adds what to do about it, because only this layer knows how the program was started and what it can ask.
enum UserMessage {
    static func describe(_ error: Error) -> String {
        guard let error = error as? TunnelError else { return "\(error)" }
        switch error {
        case .hostKeyRefused(let refusal):
            return HostKeyAdvice.explain(refusal)
        case .authenticationFailed(let failure):
            return failure.describe { attempt in
                guard attempt.problem == .encryptedWithoutPassphrase || attempt.problem == .nobodyToAsk else { return attempt.description }
                return attempt.description
                    + " (run tunnel up on a terminal to be asked, or set SSH_ASKPASS with SSH_ASKPASS_REQUIRE=force)"
            }
        case .jumpHostFailed(let target, let path, let hop, let reason):
            return "\(target) via \(path.joined(separator: ", ")): \(hop): \(describe(reason))"
        default:
            return error.description
        }
    }
}
