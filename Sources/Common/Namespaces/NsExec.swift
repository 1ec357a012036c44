import CLinux
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// ns-exec from request to exit status: plan, prepare the job's directories, launch, and report.
public enum NsExec {
    /// Runs `request`. Errors found while planning are thrown (nothing has been made yet); a failure of the
    /// launch itself is reported here, because by then this process may already sit in the job's namespaces,
    /// chroot and identity, where the wrapper error file's path may mean nothing.
    public static func run(
        _ request: NsExecRequest, config: JobboxConfig, environment: Environment, diagnostics: Diagnostics
    ) throws(JobboxError) -> Int32 {
        if Environment.isPrivilegedExecution {
            throw JobboxError.invalid("refusing to run", nil, "ns-exec is not made to run setuid or setgid")
        }
        let plan = try NsExecPlanner.plan(request, config: config, caller: .current, environment: environment)
        var created = CreatedDirectories()
        do throws(JobboxError) {
            if let scratch = plan.layout.scratch {
                try JobDirectories.prepareScratch(
                    scratch, directories: plan.scratchTargets, owner: (plan.owner.uid, plan.owner.gid), created: &created)
            }
        } catch {
            created.removeAll()
            throw error
        }
        let reporter = LaunchFailureReporter(diagnostics)
        switch NamespaceLauncher.run(plan) {
        case .exited(let status):
            return status
        case .failed(let error):
            // A job that could not be exec'd still had its directories; a set-up that failed did not.
            if error.kind == .toolFailure { created.removeAll() }
            reporter.report(error)
            return error.exitStatus
        }
    }
}

/// Reports a launch failure on stderr and in `$_CONDOR_WRAPPER_ERROR_FILE`. By then this process may be in a
/// chroot where that path means nothing, so the file's directory is opened before the launch; the file itself is
/// only created on failure (HTCondor takes its mere existence as the wrapper's failure).
struct LaunchFailureReporter {
    private let tool: String
    private let directory: Int32
    private let name: String

    init(_ diagnostics: Diagnostics) {
        tool = diagnostics.tool
        guard let path = diagnostics.wrapperErrorFile else {
            directory = -1
            name = ""
            return
        }
        let slash = path.lastIndex(of: "/")
        let parent = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        directory = open(parent, JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
    }

    func report(_ error: JobboxError) {
        let line = "\(tool): \(error.description)\n"
        writeAll(.standardError, line)
        guard directory >= 0, !name.isEmpty else { return }
        let fd = openat(directory, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        writeAll(FileDescriptor(rawValue: fd), line)
        close(fd)
    }
}
