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
