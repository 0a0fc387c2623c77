// Splits one config line into a keyword and its arguments the way OpenSSH's
// readconf.c does (strdelim for the keyword, argv_split for the rest), so a
// file that `ssh -F` accepts is read the same way here.

/// A non-blank, non-comment line: `Keyword arg1 arg2 ...`.
struct SplitLine: Equatable {
    /// As written (case preserved, for messages).
    var keyword: String
    /// Quotes removed, escapes resolved; a trailing `# comment` dropped.
    var arguments: [String]
}

enum LineSplitter {
    enum Failure: Error, Equatable {
        case missingArgument(keyword: String)
        case unbalancedQuotes
        case quoteInKeyword
    }

    private static func isSpace(_ c: Character) -> Bool {
        c == " " || c == "\t" || c == "\r" || c == "\n" || c == "\u{0C}"
    }

    /// `nil` for blank and comment lines.
    static func split(_ rawLine: Substring) throws(Failure) -> SplitLine? {
        // Nearly every line is ASCII: split its bytes in place (much faster
        // than walking Characters). Other lines take the Character path below.
        let fast = rawLine.utf8.withContiguousStorageIfAvailable { bytes -> Result<SplitLine?, Failure>? in
            guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
            do throws(Failure) {
                return .success(try ASCIILine(bytes: bytes).split())
            } catch {
                return .failure(error)
            }
        } ?? nil
        if let fast { return try fast.get() }
        return try splitCharacters(rawLine)
    }

    /// `split` on Characters, for lines that are not all ASCII (and the
    /// definition the ASCII fast path must agree with).
    static func splitCharacters(_ rawLine: Substring) throws(Failure) -> SplitLine? {
        var rest = rawLine.drop(while: isSpace)
        // OpenSSH strips trailing whitespace (and form feeds) first.
        while let last = rest.last, isSpace(last) { rest = rest.dropLast() }
        if rest.isEmpty || rest.first == "#" { return nil }

        // The keyword ends at whitespace or at the first '='.
        let keywordEnd = rest.firstIndex { isSpace($0) || $0 == "=" } ?? rest.endIndex
        let keyword = rest[..<keywordEnd]
        if keyword.contains("\"") || keyword.contains("'") { throw .quoteInKeyword }
        rest = rest[keywordEnd...].drop(while: isSpace)
        // Exactly one '=' may separate keyword and value: `Port = 22`, `Port=22`.
        if rest.first == "=" { rest = rest.dropFirst().drop(while: isSpace) }
        if rest.isEmpty { throw .missingArgument(keyword: String(keyword)) }

        return SplitLine(keyword: String(keyword), arguments: try splitArguments(rest))
    }

    /// OpenSSH's argv_split with comments allowed: arguments are separated by
    /// blanks; `"..."` and `'...'` quote (also in the middle of a word);
    /// backslash escapes a quote, a backslash, or (outside quotes) a space; a
    /// `#` at the start of an argument ends the line.
    static func splitArguments(_ text: Substring) throws(Failure) -> [String] {
        var arguments: [String] = []
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if c == " " || c == "\t" {
                index = text.index(after: index)
                continue
            }
            if c == "#" { break }

            var argument = ""
            var quote: Character? = nil
            while index < text.endIndex {
                let c = text[index]
                let next = text.index(after: index)
                if c == "\\", next < text.endIndex,
                   text[next] == "\"" || text[next] == "'" || text[next] == "\\" || (quote == nil && text[next] == " ") {
                    argument.append(text[next])
                    index = text.index(after: next)
                    continue
                }
                if quote == nil && (c == " " || c == "\t") { break }
                if quote == nil && (c == "\"" || c == "'") {
                    quote = c
                } else if let open = quote, c == open {
                    quote = nil
                } else {
                    argument.append(c)
                }
                index = next
            }
            if quote != nil { throw .unbalancedQuotes }
            arguments.append(argument)
        }
        return arguments
    }
}

/// `LineSplitter.split` on the bytes of an ASCII line. For ASCII text a byte
/// is a Character (the one two-byte Character, "\r\n", cannot occur inside
/// a line), so this follows the Character version rule for rule.
private struct ASCIILine {
    let bytes: UnsafeBufferPointer<UInt8>

    static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), hash = UInt8(ascii: "#"), equals = UInt8(ascii: "=")
    static let doubleQuote = UInt8(ascii: "\""), singleQuote = UInt8(ascii: "'"), backslash = UInt8(ascii: "\\")

    private static func isSpace(_ c: UInt8) -> Bool {
        c == space || c == tab || c == UInt8(ascii: "\r") || c == UInt8(ascii: "\n") || c == 0x0C
    }

    private func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    func split() throws(LineSplitter.Failure) -> SplitLine? {
        var start = 0, end = bytes.count
        while start < end, Self.isSpace(bytes[start]) { start += 1 }
        while end > start, Self.isSpace(bytes[end - 1]) { end -= 1 }
        if start == end || bytes[start] == Self.hash { return nil }

        // The keyword ends at whitespace or at the first '='.
        var index = start
        while index < end, !Self.isSpace(bytes[index]), bytes[index] != Self.equals { index += 1 }
        let keyword = start..<index
        if bytes[keyword].contains(where: { $0 == Self.doubleQuote || $0 == Self.singleQuote }) {
            throw .quoteInKeyword
        }
        while index < end, Self.isSpace(bytes[index]) { index += 1 }
        // Exactly one '=' may separate keyword and value.
        if index < end, bytes[index] == Self.equals {
            index += 1
            while index < end, Self.isSpace(bytes[index]) { index += 1 }
        }
        if index == end { throw .missingArgument(keyword: string(keyword)) }
        return SplitLine(keyword: string(keyword), arguments: try arguments(index..<end))
    }

    /// `LineSplitter.splitArguments` on bytes.
    private func arguments(_ range: Range<Int>) throws(LineSplitter.Failure) -> [String] {
        var arguments: [String] = []
        var argument: [UInt8] = []
        var index = range.lowerBound
        let end = range.upperBound
        while index < end {
            let c = bytes[index]
            if c == Self.space || c == Self.tab {
                index += 1
                continue
            }
            if c == Self.hash { break }

            argument.removeAll(keepingCapacity: true)
            var quote: UInt8? = nil
            while index < end {
                let c = bytes[index]
                let next = index + 1
                if c == Self.backslash, next < end,
                   bytes[next] == Self.doubleQuote || bytes[next] == Self.singleQuote || bytes[next] == Self.backslash
                    || (quote == nil && bytes[next] == Self.space) {
                    argument.append(bytes[next])
                    index = next + 1
                    continue
                }
                if quote == nil && (c == Self.space || c == Self.tab) { break }
                if quote == nil && (c == Self.doubleQuote || c == Self.singleQuote) {
                    quote = c
                } else if let open = quote, c == open {
                    quote = nil
                } else {
                    argument.append(c)
                }
                index = next
            }
            if quote != nil { throw .unbalancedQuotes }
            arguments.append(String(decoding: argument, as: UTF8.self))
        }
        return arguments
    }
}
