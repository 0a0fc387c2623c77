// Figures and the tables they are printed in.
import Foundation

/// Prints a line and flushes at once, so progress shows also when the output goes to a file or pipe (stdout is
/// block-buffered there, and Swift 6 will not let us touch the C `stdout` to change that).
func printNow(_ line: String) {
    print(line)
    fflush(nil)
}

enum Stats {
    static func median(_ values: [Double]) -> Double { percentile(values, 50) }

    /// Nearest-rank percentile (p in 0...100) of unsorted values; 0 for none.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank - 1, 0), sorted.count - 1)]
    }

    /// The same for integer nanoseconds (latency samples, often hundreds of thousands): sorts once, in place.
    static func percentiles(ofNanoseconds samples: inout [UInt64], _ ps: [Double]) -> [Double] {
        guard !samples.isEmpty else { return ps.map { _ in 0 } }
        samples.sort()
        return ps.map { p in
            let rank = Int((p / 100 * Double(samples.count)).rounded(.up))
            return Double(samples[min(max(rank - 1, 0), samples.count - 1)])
        }
    }
}

/// One figure measured for both programs in the same run.
struct Comparison {
    var caseName: String
    var metric: String
    var unit: String
    var tunnel: Double
    var openSSH: Double
    /// Whether a bigger number is better (requests/s) or worse (latency, CPU): said next to the ratio.
    var higherIsBetter: Bool

    var ratio: Double { openSSH == 0 ? .nan : tunnel / openSSH }
}

/// Prints comparisons as a Markdown table (readable on a terminal, pasteable into the README).
enum ComparisonTable {
    /// `columns`: what the two figures are (the summary's are tunnel up and ssh -L; a case may compare others).
    static func print(_ rows: [Comparison], title: String, columns: (String, String) = ("tunnel up", "ssh -L")) {
        guard !rows.isEmpty else { return }
        Swift.print("\n\(title)\n")
        let ratio = columns == ("tunnel up", "ssh -L") ? "tunnel / ssh -L" : "ratio"
        Swift.print("| case | metric | \(columns.0) | \(columns.1) | \(ratio) |")
        Swift.print("|---|---|---:|---:|---:|")
        for row in rows {
            let better = row.higherIsBetter ? "higher is better" : "lower is better"
            Swift.print("| \(row.caseName) | \(row.metric) (\(row.unit)) | \(format(row.tunnel)) | \(format(row.openSSH)) | "
                + String(format: "%.2f", row.ratio) + " (\(better)) |")
        }
        fflush(nil)
    }

    static func format(_ value: Double) -> String {
        if value >= 100 { return String(format: "%.0f", value) }
        if value >= 10 { return String(format: "%.1f", value) }
        return String(format: "%.2f", value)
    }
}
