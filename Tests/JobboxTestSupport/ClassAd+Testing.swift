import JobboxCore

extension ClassAd {
    /// An integer attribute as `Int`, so expectations compare with plain integer expressions.
    package func int(_ name: String) -> Int? {
        integer(name).map { Int($0) }
    }
}
