import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// ns-exec from request to exit status: plan, prepare the job's directories, launch, and report.
package enum NsExec {
    /// Runs `request`. Errors found while planning are thrown (nothing has been made yet); a failure of the
    /// launch itself is reported here, because by then this process may already sit in the job's namespaces,
    /// chroot and identity, where the wrapper error file's path may mean nothing.
    package static func run(
        _ request: NsExecRequest, config: JobboxConfig, environment: Environment, diagnostics: Diagnostics
    ) throws(JobboxError) -> Int32 {
        // Setuid, setgid and file capabilities are refused before this, for every tool (`PrivilegedExecution`).
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
    private let parent: GuardedDirectory?
    private let name: String
    private let path: String

    init(_ diagnostics: Diagnostics) {
        tool = diagnostics.tool
        path = diagnostics.wrapperErrorFile ?? ""
        // The file lies in the job's scratch dir: its directory is reached by GuardedPath's rule.
        if let file = diagnostics.wrapperErrorFile,
            let (directory, name) = try? GuardedPath.openParent(of: file, for: "cannot append to the wrapper error file")
        {
            parent = directory
            self.name = name
        } else {
            parent = nil
            name = ""
        }
    }

    func report(_ error: JobboxError) {
        let line = "\(tool): \(error.description)\n"
        writeAll(.standardError, line)
        guard let parent else { return }
        do throws(JobboxError) {
            try GuardedFile.append(line, in: parent, name: name, path: path, for: "cannot append to the wrapper error file")
        } catch {
            writeAll(.standardError, "\(tool): \(error.description)\n")
        }
    }
}
