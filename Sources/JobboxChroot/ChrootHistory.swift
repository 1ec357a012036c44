import JobboxCore

/// The log of builds, switches and rollbacks of one chroot, kept next to the chroots in `CHROOT_DIR/.NAME.history`
/// (one `TIME EVENT vN` line each, appended under the chroot's lock).
///
/// It answers two questions: which number the next build gets (one more than any version ever built, so a number
/// is never reused after gc), and where `rollback` goes (the version that was current before).
package struct ChrootHistory: Sendable, Equatable {
    /// What happened.
    package enum Event: String, Sendable {
        /// A version was built and renamed into place.
        case build
        /// `CHROOT_DIR/NAME` was pointed at a version.
        case `switch`
        /// `CHROOT_DIR/NAME` was pointed back at an earlier version.
        case rollback
    }

    /// One line.
    package struct Record: Sendable, Equatable {
        /// `2026-11-25T13:40:00Z`.
        package let time: String
        /// What happened.
        package let event: Event
        /// To which version.
        package let number: Int

        /// `TIME EVENT vN`.
        package var line: String { "\(time) \(event.rawValue) v\(number)" }
    }

    /// The records, oldest first.
    package var records: [Record]

    /// A history from records.
    package init(records: [Record] = []) {
        self.records = records
    }

    /// Parses the file's text; lines it does not understand are skipped (the log is advisory, the symlink is the
    /// truth).
    package init(parsing text: String) {
        records = text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, let event = Event(rawValue: String(fields[1])), fields[2].hasPrefix("v"),
                let number = ChrootVersion.parseNumber(fields[2].dropFirst())
            else { return nil }
            return Record(time: String(fields[0]), event: event, number: number)
        }
    }

    /// The highest version number ever built.
    package var highestBuilt: Int {
        records.filter { $0.event == .build }.map(\.number).max() ?? 0
    }

    /// The versions made current, as a stack: a switch pushes, a rollback pops back to its target.
    package var currentStack: [Int] {
        var stack: [Int] = []
        for record in records {
            switch record.event {
            case .build:
                continue
            case .switch:
                stack.append(record.number)
            case .rollback:
                if let index = stack.lastIndex(of: record.number) {
                    stack.removeSubrange((index + 1)...)
                } else {
                    stack = [record.number]
                }
            }
        }
        return stack
    }

    /// Where `rollback` goes from `current`: the most recent version made current before it that still exists.
    package func rollbackTarget(current: Int?, exists: (Int) -> Bool) -> Int? {
        currentStack.reversed().first { $0 != current && exists($0) }
    }
}
