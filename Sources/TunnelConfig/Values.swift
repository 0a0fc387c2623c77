// Scalar values of ssh_config keywords, accepted in the spellings OpenSSH accepts.

/// How to treat a server host key that is not in known_hosts (ssh_config(5)).
public enum StrictHostKeyChecking: String, Sendable {
    /// Refuse unknown and changed keys.
    case yes
    /// Add unknown keys, refuse changed ones.
    case acceptNew = "accept-new"
    /// Add unknown keys, and connect even when a key changed (with restrictions).
    case no
    /// Ask the user (OpenSSH's default). A background tunnel cannot ask, so it refuses.
    case ask

    /// `yes`/`true`, `no`/`false`/`off`, `ask`, `accept-new`; any case.
    init?(configValue: String) {
        switch configValue.lowercased() {
        case "yes", "true": self = .yes
        case "no", "false", "off": self = .no
        case "ask": self = .ask
        case "accept-new": self = .acceptNew
        default: return nil
        }
    }
}

enum ValueSyntax {
    /// `yes`/`true` or `no`/`false`, any case (OpenSSH's multistate_flag).
    static func flag(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "yes", "true": return true
        case "no", "false": return false
        default: return nil
        }
    }

    /// A non-negative decimal integer that fits an Int32 (OpenSSH's atoi_err).
    static func count(_ text: String) -> Int? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(text), value <= Int(Int32.max) else { return nil }
        return value
    }

    /// OpenSSH time format (convtime): `90`, `90s`, `1m30s`, `2h`, `1d`, `1w`;
    /// units in either case; seconds when none. `nil` when malformed or too big.
    static func seconds(_ text: String) -> Int? {
        guard !text.isEmpty else { return nil }
        var total = 0
        var number = ""
        func add(_ multiplier: Int) -> Bool {
            guard let n = Int(number) else { return false }
            let (product, overflow1) = n.multipliedReportingOverflow(by: multiplier)
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow1, !overflow2, sum <= Int(Int32.max) else { return false }
            total = sum
            number = ""
            return true
        }
        for c in text {
            if c.isASCII && c.isNumber {
                number.append(c)
                continue
            }
            let multiplier: Int
            switch c {
            case "s", "S": multiplier = 1
            case "m", "M": multiplier = 60
            case "h", "H": multiplier = 3600
            case "d", "D": multiplier = 86400
            case "w", "W": multiplier = 604_800
            default: return nil
            }
            guard !number.isEmpty, add(multiplier) else { return nil }
        }
        if !number.isEmpty, !add(1) { return nil }
        return total
    }
}
