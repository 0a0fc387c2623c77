import Testing
@testable import TunnelEngine

@Suite("OutageReport: each reason said once, reminders at the cap")
struct OutageReportTests {
    @Test("the same reason again is quiet; a new reason is news")
    func sameReasonIsQuiet() {
        var report = OutageReport()
        #expect(report.failed(reason: "connection refused", atCap: false) == .news)
        #expect(report.failed(reason: "connection refused", atCap: false) == .repeated)
        #expect(report.failed(reason: "connection refused", atCap: false) == .repeated)
        #expect(report.failed(reason: "timed out", atCap: false) == .news)
    }

    @Test("at the cap: a reminder on the first capped attempt, then every tenth")
    func remindersAtCap() {
        var report = OutageReport()
        #expect(report.failed(reason: "refused", atCap: false) == .news)
        var levels: [OutageReport.Level] = []
        for _ in 0..<21 { levels.append(report.failed(reason: "refused", atCap: true)) }
        let reminders = levels.enumerated().filter { $0.element == .reminder }.map(\.offset)
        #expect(reminders == [0, 10, 20])
    }

    @Test("after a recovery the same reason is news again")
    func recoveryResets() {
        var report = OutageReport()
        _ = report.failed(reason: "refused", atCap: false)
        report.recovered()
        #expect(report.failed(reason: "refused", atCap: false) == .news)
    }
}
