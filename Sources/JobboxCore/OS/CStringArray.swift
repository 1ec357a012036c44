#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A NULL-terminated array of C strings (an `argv` or `envp`), allocated before a fork and freed after.
///
/// The C side that forks and execs must not allocate, so every string it needs is copied here first; the
/// copies live as long as this object.
package final class CStringArray {
    /// The strings, then a nil: pass it where C takes `char *const argv[]`.
    package private(set) var pointers: [UnsafeMutablePointer<CChar>?]

    /// Copies `strings`; nil when memory runs out.
    package init?(_ strings: [String]) {
        pointers = []
        pointers.reserveCapacity(strings.count + 1)
        for string in strings {
            guard let copy = strdup(string) else {
                for pointer in pointers { free(pointer) }
                return nil
            }
            pointers.append(copy)
        }
        pointers.append(nil)
    }

    /// Copies an environment as `NAME=value` strings, sorted by name (the child sees them in a stable order).
    package convenience init?(environment: [String: String]) {
        self.init(environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }
}
