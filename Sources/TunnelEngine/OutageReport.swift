/// How loudly to report a failed attempt at a session, so a host that keeps failing is not logged every second:
/// a new reason is news, the same reason again is kept quiet, and while retries run at the backoff's cap a
/// reminder goes out on the first such attempt and every `reminderEvery` after it. Pure logic.
public struct OutageReport: Sendable, Equatable {
    public enum Level: Sendable, Equatable {
        /// A reason not reported since the last success (or a changed one): log it loudly.
        case news
        /// The same reason, still failing at the cap: a reminder.
        case reminder
        /// The same reason again: keep it out of the normal log.
        case repeated
    }

    /// At the cap (one attempt a minute by default), a reminder every this many attempts (about ten minutes).
    public static let reminderEvery = 10

    private var lastReason: String?
    private var attemptsAtCap = 0

    public init() {}

    /// An attempt failed for `reason` (its text: equal texts are the same reason); `atCap` when the next retry
    /// waits the backoff's full cap.
    public mutating func failed(reason: String, atCap: Bool) -> Level {
        guard reason == lastReason else {
            lastReason = reason
            attemptsAtCap = atCap ? 1 : 0
            return .news
        }
        guard atCap else { return .repeated }
        attemptsAtCap += 1
        return attemptsAtCap == 1 || (attemptsAtCap - 1) % Self.reminderEvery == 0 ? .reminder : .repeated
    }

    /// A session came up (or was lost after being up): the next failure is news again.
    public mutating func recovered() {
        lastReason = nil
        attemptsAtCap = 0
    }
}
