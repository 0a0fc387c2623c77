import Logging
import NIOConcurrencyHelpers
import SSH2
import TunnelConfig

/// Logs a session in: asks the server which methods it takes, then tries the configured ones it offers in order
/// (see `AuthenticationPlan`): key files (`PublicKeyAuthenticator`), keyboard-interactive, password. Each failure is
/// logged at debug and recorded; when every method failed, the error lists what was tried.
///
/// Runs on the thread pool with the session lent to it (see `SSHConnection.startAuthenticationStep`), so asking a
/// person (`ConnectionSettings.askSecret`, which may block while they type) never stalls the event loop. A step
/// returns nil when libssh2 waits for the server; the next step repeats the same call.
final class SessionAuthenticator {
    private let settings: ConnectionSettings
    private let logger: Logger
    private let publicKey: PublicKeyAuthenticator

    private enum Phase {
        /// Asking the server which methods it offers.
        case listing
        /// Trying `methods[index]`.
        case trying(index: Int)
    }
    private var phase = Phase.listing
    private var methods: [AuthenticationMethod] = []
    private var offered: [String] = []
    private var attempts: [AuthenticationAttempt] = []
    /// Wrong answers so far for the method being tried.
    private var wrongAnswers = 0
    /// The password being sent, kept to repeat the call after `.wouldBlock`.
    private var pendingPassword: String?
    /// A keyboard-interactive exchange is under way (libssh2 keeps its state between calls).
    private var interactiveInFlight = false
    private var interactiveUnanswered = false
    /// Whether a person is being asked right now: the setup deadline waits for them (see `SSHConnection`).
    let waitingForPerson = NIOLockedValueBox(false)

    init(settings: ConnectionSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        publicKey = PublicKeyAuthenticator(settings: settings, logger: logger)
    }

    /// What logged in (an identity file, or the method's name); nil while waiting for the server; throws when
    /// every method failed.
    func step(_ session: SSHSession) throws(TunnelError) -> String? {
        if case .listing = phase {
            let listed: [String]?
            do {
                switch try session.userauthList(user: settings.user) {
                case .wouldBlock: return nil
                case .done(let list): listed = list
                }
            } catch {
                throw .ssh(SSHFailure(error))
            }
            // The server let the user in with the "none" method.
            guard let listed else { return AuthenticationMethod.none.rawValue }
            offered = listed
            methods = AuthenticationPlan.toTry(configured: settings.authenticationMethods, offered: listed)
            logger.debug("the server offers \(listed.joined(separator: ",")); trying \(methods.map(\.rawValue).joined(separator: ",")) in that order")
            phase = .trying(index: 0)
        }
        while case .trying(let index) = phase, index < methods.count {
            let outcome: Outcome
            switch methods[index] {
            case .publickey: outcome = try publicKeyStep(session)
            case .password: outcome = try passwordStep(session)
            case .keyboardInteractive: outcome = try interactiveStep(session)
            default: outcome = .exhausted
            }
            switch outcome {
            case .waiting: return nil
            case .succeeded(let what): return what
            case .exhausted:
                phase = .trying(index: index + 1)
                wrongAnswers = 0
            }
        }
        let none = methods.isEmpty
        throw .authenticationFailed(AuthenticationFailure(peer: settings.peer, attempts: attempts,
                                                          offered: none ? offered : nil,
                                                          allowed: none ? settings.authenticationMethods : nil))
    }

    private enum Outcome {
        case waiting
        case succeeded(String)
        /// This method is done for; go on to the next.
        case exhausted
    }

    private func publicKeyStep(_ session: SSHSession) throws(TunnelError) -> Outcome {
        do {
            guard let identity = try publicKey.step(session) else { return .waiting }
            return .succeeded(identity)
        } catch {
            guard case .authenticationFailed(let failure) = error else { throw error }
            for attempt in failure.attempts { logger.debug("publickey: \(attempt)") }
            attempts += failure.attempts
            return .exhausted
        }
    }

    private func passwordStep(_ session: SSHSession) throws(TunnelError) -> Outcome {
        while true {
            if pendingPassword == nil {
                if let problem = reasonNotToAsk(.password) { return give(.password, problem) }
                let request = SecretRequest(kind: .password, peer: settings.peer,
                                            prompt: "\(settings.user)@\(settings.hostName)'s password: ",
                                            attempt: wrongAnswers + 1)
                guard let answer = ask(request) else { return give(.password, wrongAnswers > 0 ? .answersRefused(tries: wrongAnswers) : .noAnswer) }
                pendingPassword = answer
            }
            do {
                switch try session.userauthPassword(user: settings.user, password: pendingPassword ?? "") {
                case .wouldBlock: return .waiting
                case .done:
                    pendingPassword = nil
                    return .succeeded(AuthenticationMethod.password.rawValue)
                }
            } catch {
                pendingPassword = nil
                if error.isSessionFatal { throw .ssh(SSHFailure(error)) }
                wrongAnswers += 1
                logger.debug("password: refused by the server (try \(wrongAnswers) of \(settings.numberOfPasswordPrompts)): \(error)")
            }
        }
    }

    private func interactiveStep(_ session: SSHSession) throws(TunnelError) -> Outcome {
        while true {
            if !interactiveInFlight {
                if let problem = reasonNotToAsk(.keyboardInteractive) { return give(.keyboardInteractive, problem) }
                interactiveInFlight = true
                interactiveUnanswered = false
            }
            do {
                let step = try session.userauthKeyboardInteractive(user: settings.user) { [self] questions in
                    answer(questions)
                }
                switch step {
                case .wouldBlock: return .waiting
                case .done:
                    interactiveInFlight = false
                    return .succeeded(AuthenticationMethod.keyboardInteractive.rawValue)
                }
            } catch {
                interactiveInFlight = false
                if error.isSessionFatal { throw .ssh(SSHFailure(error)) }
                if interactiveUnanswered {
                    return give(.keyboardInteractive, wrongAnswers > 0 ? .answersRefused(tries: wrongAnswers) : .noAnswer)
                }
                wrongAnswers += 1
                logger.debug("keyboard-interactive: refused by the server (try \(wrongAnswers) of \(settings.numberOfPasswordPrompts)): \(error)")
            }
        }
    }

    /// One round of the server's questions, each asked in turn; nil as soon as one goes unanswered.
    private func answer(_ questions: SSHSession.InteractiveQuestions) -> [String]? {
        var answers: [String] = []
        for prompt in questions.prompts {
            let request = SecretRequest(kind: .keyboardInteractive, peer: settings.peer, prompt: prompt.text,
                                        echo: prompt.echo, instruction: questions.instruction, attempt: wrongAnswers + 1)
            guard let answer = ask(request) else {
                interactiveUnanswered = true
                return nil
            }
            answers.append(answer)
        }
        return answers
    }

    /// Why `method` must not ask (again), if so.
    private func reasonNotToAsk(_ method: AuthenticationMethod) -> AuthenticationAttempt.Problem? {
        if wrongAnswers >= settings.numberOfPasswordPrompts { return .answersRefused(tries: wrongAnswers) }
        if settings.askSecret == nil { return .nobodyToAsk }
        return nil
    }

    private func ask(_ request: SecretRequest) -> String? {
        guard let askSecret = settings.askSecret else { return nil }
        waitingForPerson.withLockedValue { $0 = true }
        defer { waitingForPerson.withLockedValue { $0 = false } }
        return askSecret(request)
    }

    private func give(_ method: AuthenticationMethod, _ problem: AuthenticationAttempt.Problem) -> Outcome {
        let attempt = AuthenticationAttempt(identityFile: "", problem: problem, method: method)
        logger.debug("\(attempt)")
        attempts.append(attempt)
        return .exhausted
    }
}
