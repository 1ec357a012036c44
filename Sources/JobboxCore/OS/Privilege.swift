#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Who the process runs as, for tools that need root and say so up front.
package enum Privilege {
    /// Whether the effective user is root.
    package static var isRoot: Bool { geteuid() == 0 }
}
