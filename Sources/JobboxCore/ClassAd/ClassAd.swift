/// A value in a long-form ClassAd as jobbox writes or reads it.
package enum ClassAdValue: Sendable, Equatable {
    /// A 64-bit integer, written in plain decimal.
    case integer(Int64)
    /// A real, written with a `.` (or an exponent) so HTCondor reads it back as a real.
    case real(Double)
    /// A string, written in double quotes with `"` escaped.
    case string(String)
    /// `true` or `false`.
    case boolean(Bool)
    /// An expression jobbox does not interpret (read side only; never written).
    case expression(String)
}

/// An ordered list of `Name = value` attributes: one ClassAd in HTCondor's long form.
///
/// Setting and looking up an attribute is O(1) amortized once the ad is large (an index by lower-cased name beside
/// the ordered list), so reading an ad of N lines is O(N): a job ad is the job's to write. An ad of at most
/// `indexedFrom` attributes (jobbox's own) is searched instead: the first `[String: Int]` a process makes costs it
/// a scan of the binary's conformance records for String's `Hashable`, more than the searches of a small ad.
package struct ClassAd: Sendable, Equatable {
    /// The attributes in insertion order. Names are unique ignoring case.
    package private(set) var attributes: [(name: String, value: ClassAdValue)] = []
    /// The lower-cased names, in the order of `attributes`.
    private var keys: [String] = []
    /// Each attribute's position in `attributes` by lower-cased name, once there are more than `indexedFrom`.
    private var positions: [String: Int]?
    /// The most attributes searched without an index.
    static let indexedFrom = 64

    /// An empty ad.
    package init() {}

    /// The position of the attribute whose lower-cased name is `key`.
    private func position(_ key: String) -> Int? {
        if let positions { return positions[key] }
        return keys.firstIndex(of: key)
    }

    /// Sets `name` to `value`, replacing an attribute of the same name (ignoring case) in place.
    package mutating func set(_ name: String, _ value: ClassAdValue) {
        let key = name.lowercased()
        if let index = position(key) {
            attributes[index] = (name, value)
            return
        }
        keys.append(key)
        attributes.append((name, value))
        if positions != nil {
            positions?[key] = keys.count - 1
        } else if keys.count > Self.indexedFrom {
            positions = Dictionary(uniqueKeysWithValues: zip(keys, keys.indices))
        }
    }

    /// Sets an integer attribute.
    package mutating func set(_ name: String, _ value: some BinaryInteger) { set(name, .integer(Int64(clamping: value))) }
    /// Sets a real attribute.
    package mutating func set(_ name: String, _ value: Double) { set(name, .real(value)) }
    /// Sets a string attribute.
    package mutating func set(_ name: String, _ value: String) { set(name, .string(value)) }
    /// Sets a boolean attribute.
    package mutating func set(_ name: String, _ value: Bool) { set(name, .boolean(value)) }

    /// The value of `name` (case-insensitive), or nil.
    package subscript(name: String) -> ClassAdValue? {
        position(name.lowercased()).map { attributes[$0].value }
    }

    /// The value of `name` as an integer (a real is truncated, as HTCondor's `LookupInteger` does).
    package func integer(_ name: String) -> Int64? {
        switch self[name] {
        case .integer(let value): return value
        case .real(let value) where value.isFinite && abs(value) < 9.2e18: return Int64(value)
        case .boolean(let value): return value ? 1 : 0
        default: return nil
        }
    }

    /// The value of `name` as a real (an integer converts).
    package func real(_ name: String) -> Double? {
        switch self[name] {
        case .integer(let value): return Double(value)
        case .real(let value): return value
        default: return nil
        }
    }

    /// The value of `name` as a string.
    package func string(_ name: String) -> String? {
        if case .string(let value) = self[name] { return value }
        return nil
    }

    /// The value of `name` as a boolean.
    package func boolean(_ name: String) -> Bool? {
        switch self[name] {
        case .boolean(let value): return value
        case .integer(let value): return value != 0
        default: return nil
        }
    }

    package static func == (lhs: ClassAd, rhs: ClassAd) -> Bool {
        lhs.attributes.count == rhs.attributes.count
            && zip(lhs.attributes, rhs.attributes).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
