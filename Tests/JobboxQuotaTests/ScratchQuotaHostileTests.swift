import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxQuota

/// What a job can plant against the root tools' quota calls: the scratch path's last step is the job's to write
/// when the job owns the directory above it (a scratch dir inside another job-owned directory), so a symlink there
/// must not point root's quota at another directory.
@Suite("Hostile: scratch quotas as root", .serialized, .enabled(if: BtrfsImage.available, "needs root and mkfs.btrfs (btrfs-progs)"))
struct ScratchQuotaHostileTests {
    @Test("A symlink the job planted as the scratch dir is refused by ns-exec, jobstat and --remove-scratch-quota; the other subvolume's quota is untouched")
    func plantedSymlink() throws {
        try BtrfsImage.withUserAndImage { user, image in
            // Another job's scratch subvolume, with its own 32 MiB limit.
            let victim = try image.subvolume("victim")
            try ScratchQuota.apply(ScratchQuotaLimit(bytes: 32 << 20), to: victim, settings: image.settings)
            let owned = try Hostile.jobWritableDirectory(in: image.mount, uid: user.uid, gid: user.gid)
            let result = try TestSupport.run(user.command(["/bin/ln", "-s", victim, owned + "/scratch"]))
            #expect(result.status == 0, "\(result)")
            let planted = owned + "/scratch"

            let run = try TestSupport.run(["ns-exec", "--config", image.config, "--pid", "--scratch", planted, "--scratch-quota", "1M", "--", "/bin/true"])
            #expect(run.status == 125, "\(run)")
            #expect(run.stderr.contains("cannot open scratch directory \(planted)"), "\(run)")
            let remove = try TestSupport.run(["ns-exec", "--config", image.config, "--remove-scratch-quota", planted])
            #expect(remove.status == 125, "\(remove)")
            let stat = try TestSupport.run(["jobstat", "--config", image.config, "--self", "--scratch", planted])
            #expect(stat.status == 125, "\(stat)")
            #expect(try ScratchQuota.usage(of: victim, settings: image.settings).byteLimit == 32 << 20, "the victim's limit changed")
        }
    }

    @Test("A quota is set only on the directory ns-exec opened: another one renamed to its path meanwhile is refused")
    func swappedScratchRefused() throws {
        try BtrfsImage.withUserAndImage { _, image in
            let scratch = try image.subvolume("scratch")
            var info = stat()
            #expect(stat(scratch, &info) == 0)
            let opened = (device: UInt64(info.st_dev), inode: UInt64(info.st_ino) + 1)
            #expect(throws: JobboxError.invalid("cannot set a scratch quota on", scratch, "another directory took its place")) {
                try ScratchQuota.apply(ScratchQuotaLimit(bytes: 8 << 20), to: scratch, settings: image.settings, expecting: opened)
            }
            #expect(try ScratchQuota.usage(of: scratch, settings: image.settings).byteLimit == nil, "a limit was set")
        }
    }
}
