import CLinux

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Writes ClassAds in HTCondor's long form, refusing anything HTCondor's parser would not read back as written.
///
/// The rules (`reference/htcondor.md` section 5): names `[A-Za-z_][A-Za-z0-9_]*` and not a keyword; integers in
/// plain decimal; reals as `%.16G` with `.0` appended when that has no `.` or exponent; strings in double quotes
/// with only `"` escaped, no newlines and no trailing backslash; `true`/`false`; several ads separated by a
/// blank line.
package enum ClassAdWriter {
    /// Names the lexer treats as keywords or scope prefixes, so they cannot be attribute names.
    static let reservedNames: NameSet = ["true", "false", "undefined", "error", "is", "isnt", "my", "target", "parent"]

    /// Why an attribute cannot be written.
    package struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// The attribute's name.
        package let attribute: String
        /// Why.
        package let reason: String
        package var description: String { "\(attribute): \(reason)" }
    }

    /// Renders one ad: `Name = value` lines, each ending in a newline.
    package static func render(_ ad: ClassAd) throws(Refusal) -> String {
        var text = ""
        for (name, value) in ad.attributes {
            try checkName(name)
            text += "\(name) = \(try renderValue(value, of: name))\n"
        }
        return text
    }

    /// Renders several ads separated by blank lines.
    package static func render(_ ads: [ClassAd]) throws(Refusal) -> String {
        // Appended in turn: `joined(separator:)` reaches this binary unspecialized (a conformance scan at first use).
        var text = ""
        for (index, ad) in ads.enumerated() {
            if index > 0 { text += "\n" }
            text += try render(ad)
        }
        return text
    }

    /// Throws when `name` is not a valid, non-keyword attribute name.
    package static func checkName(_ name: String) throws(Refusal) {
        let scalars = Array(name.unicodeScalars)
        guard let first = scalars.first else { throw Refusal(attribute: name, reason: "empty attribute name") }
        let isLetter: (Unicode.Scalar) -> Bool = { ("A"..."Z").contains($0) || ("a"..."z").contains($0) || $0 == "_" }
        guard isLetter(first), scalars.allSatisfy({ isLetter($0) || ("0"..."9").contains($0) }) else {
            throw Refusal(attribute: name, reason: "not a ClassAd attribute name ([A-Za-z_][A-Za-z0-9_]*)")
        }
        guard !reservedNames.contains(name.lowercased()) else {
            throw Refusal(attribute: name, reason: "a ClassAd keyword cannot be an attribute name")
        }
    }

    /// The right-hand side for `value`.
    package static func renderValue(_ value: ClassAdValue, of name: String = "value") throws(Refusal) -> String {
        switch value {
        case .integer(let number):
            return String(number)
        case .real(let number):
            return formatReal(number)
        case .boolean(let flag):
            return flag ? "true" : "false"
        case .string(let text):
            if text.contains(where: { $0 == "\n" || $0 == "\r" }) {
                throw Refusal(attribute: name, reason: "a string with a newline does not survive HTCondor's parser")
            }
            // Scalars, not Characters: a combining mark fuses with the backslash or a quote into one Character.
            if text.unicodeScalars.last == "\\" {
                throw Refusal(attribute: name, reason: "a string ending in a backslash does not survive HTCondor's parser")
            }
            if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
                throw Refusal(attribute: name, reason: "a string with a control character does not survive HTCondor's parser")
            }
            return "\"" + text.replacingQuotes() + "\""
        case .expression(let text):
            throw Refusal(attribute: name, reason: "jobbox does not write expressions ('\(text)')")
        }
    }

    /// `%.16G` with `.0` appended when the result has no `.` or exponent, as HTCondor writes reals; NaN and
    /// infinities as `real("NaN")`, `real("INF")`, `real("-INF")`.
    package static func formatReal(_ number: Double) -> String {
        if number.isNaN { return "real(\"NaN\")" }
        if number.isInfinite { return number > 0 ? "real(\"INF\")" : "real(\"-INF\")" }
        var buffer = [CChar](repeating: 0, count: 40)
        let count = buffer.withUnsafeMutableBufferPointer { jb_format_real($0.baseAddress, $0.count, number) }
        var text = String(decoding: buffer.prefix(Int(max(0, count))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if !text.contains(".") && !text.contains("E") { text += ".0" }
        return text
    }
}

extension String {
    /// Every `"` escaped, scalar by scalar: a quote followed by a combining mark is one Character, and missing it
    /// would end the string early for HTCondor's reader (found by fuzz/classad-roundtrip).
    fileprivate func replacingQuotes() -> String {
        var result = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if scalar == "\"" { result.append("\\") }
            result.append(scalar)
        }
        return String(result)
    }
}
