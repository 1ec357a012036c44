import JobboxCore
import Testing

/// The byte-wise text helpers of the start-up paths give what the standard library's Character-wise ones give.
@Suite("Text on bytes")
struct TextBytesTests {
    /// Every string of up to five pieces from an alphabet with the separator, a multi-byte character and a
    /// combining accent (which joins the character before it into one grapheme cluster).
    static var samples: [String] {
        let alphabet = ["a", ":", "é", "\u{301}", "ß:", "::"]
        var all = [""]
        var level = [""]
        for _ in 0..<4 {
            level = level.flatMap { prefix in alphabet.map { prefix + $0 } }
            all += level
        }
        return all
    }

    @Test("splitASCII cuts where split(separator:) cuts, with and without empty pieces and a split limit")
    func splitMatchesTheStandardLibrary() {
        for text in Self.samples {
            for omitting in [true, false] {
                for limit in [0, 1, 2, Int.max] {
                    let bytes = text.splitASCII(":", maxSplits: limit, omittingEmpty: omitting).map(String.init)
                    // On Unicode scalars, as the kernel's text is cut: the Character-wise split would keep "a:\u{301}"
                    // whole only if ":" and the accent formed one grapheme, which they do not.
                    let scalars = text.unicodeScalars.split(separator: ":", maxSplits: limit, omittingEmptySubsequences: omitting).map {
                        String(String.UnicodeScalarView($0))
                    }
                    #expect(bytes == scalars, "\(text.debugDescription) limit \(limit) omitting \(omitting)")
                }
            }
        }
    }

    @Test("contains(utf8:) and trimmingASCIISpaces agree with the standard library")
    func searchAndTrim() {
        for text in Self.samples {
            let scalars = Array(text.unicodeScalars)
            for needle in ["", ":", "a:", "é", "::", "aé:", "\u{301}"] {
                // UTF-8 synchronises itself, so a byte match is a match of whole scalars: the reference searches those.
                let pattern = Array(needle.unicodeScalars)
                let expected =
                    pattern.isEmpty
                    || (scalars.count >= pattern.count
                        && (0...(scalars.count - pattern.count)).contains { scalars[$0..<($0 + pattern.count)].elementsEqual(pattern) })
                #expect(text.contains(utf8: needle) == expected, "\(text.debugDescription) \(needle.debugDescription)")
            }
        }
        #expect(" \t a b \r\n".trimmingASCIISpaces() == "a b")
        #expect(" \u{A0}x\u{A0} ".trimmingASCIISpaces() == "\u{A0}x\u{A0}")
        #expect(" \n ".trimmingASCIISpaces() == "")
        #expect("/a/../b".contains(utf8: "/../"))
        #expect(!"/a/..b".contains(utf8: "/../"))
    }
}
