import Foundation
import FuzzHarnesses
import Testing

/// Every input the fuzzers start from (Fuzz/Corpus/TARGET) and every input that once crashed one
/// (Fuzz/Regressions/TARGET), run once through the same harness: a fixed crash that comes back fails here, in the
/// normal test run, without libFuzzer.
@Suite("Fuzz corpora replayed")
struct FuzzRegressionTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz").path

    static func inputs(_ kind: String, _ harness: FuzzHarness) -> [String] {
        let directory = fuzzDirectory + "/\(kind)/\(harness.rawValue)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory + "/" + $0 }
    }

    @Test("seed corpus and crash inputs run without a crash or a hang", arguments: FuzzHarness.allCases)
    func replay(_ harness: FuzzHarness) throws {
        let seeds = Self.inputs("Corpus", harness)
        #expect(!seeds.isEmpty, "no seed corpus in \(Self.fuzzDirectory)/Corpus/\(harness.rawValue)")
        for path in seeds + Self.inputs("Regressions", harness) {
            harness.run(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }
    }
}
