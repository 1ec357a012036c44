import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxQuota

/// Scratch quotas on btrfs qgroups, on this machine's kernel: loop-mounted images the tests make, jobs run by
/// the built ns-exec as a throwaway user, figures read by the built jobstat.
@Suite("Scratch quota on btrfs (kernel)", .serialized, .enabled(if: BtrfsImage.available, "needs root and mkfs.btrfs (btrfs-progs)"))
struct ScratchQuotaBtrfsTests {
    /// Runs `body` with a new image, removed afterwards even when `body` fails; checks nothing of it is left.
    func withImage(quotas: Bool = true, _ body: (BtrfsImage) throws -> Void) throws {
        let image = try BtrfsImage(quotas: quotas)
        defer {
            image.remove()
            #expect(image.leftovers().isEmpty, "left behind: \(image.leftovers())")
        }
        try body(image)
    }

    /// `name = value` lines of a ClassAd.
    static func attributes(_ ad: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in ad.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { result[parts[0]] = parts[1] }
        }
        return result
    }

    @Test("A job past its quota gets EDQUOT in /tmp; jobstat's DiskUsage matches du; the limit is removed by --remove-scratch-quota")
    func limitAndFigures() throws {
        let user = try TestUser(prefix: "jbq")
        defer { user.remove() }
        try withImage { image in
            let scratch = try image.subvolume("job1", owner: (user.uid, user.gid))
            let job = "dd if=/dev/zero of=/tmp/small bs=1M count=2 2>/dev/null || exit 3; dd if=/dev/zero of=/var/tmp/big bs=1M count=20; echo dd=$?"
            let run = try TestSupport.run([
                "ns-exec", "--config", image.config, "--pid", "--scratch", scratch, "--scratch-quota", "8M", "--user", user.name, "--", "/bin/sh", "-c",
                job,
            ])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("dd=1"), "\(run)")
            #expect(run.stderr.contains("Disk quota exceeded"), "\(run)")
            // The job's /tmp and /var/tmp are in the scratch dir, where HTCondor will find them.
            #expect(FileManager.default.fileExists(atPath: scratch + "/tmp/small"))
            #expect(FileManager.default.fileExists(atPath: scratch + "/var/tmp/big"))

            try image.sync()
            let stat = try TestSupport.run(["jobstat", "--config", image.config, "--self", "--scratch", scratch])
            #expect(stat.status == 0, "\(stat)")
            let ad = Self.attributes(stat.stdout)
            let du = try image.du(scratch)
            let diskUsage = try #require(ad["DiskUsage"].flatMap(Int.init), "\(stat)")
            // btrfs counts the subvolume's metadata too (a few 16 KiB tree blocks).
            #expect(abs(diskUsage - du) <= 256, "DiskUsage \(diskUsage) KiB, du \(du) KiB")
            #expect(diskUsage > 7 * 1024 && diskUsage <= 8 * 1024)
            #expect(ad["ScratchQuotaKb"] == "8192")
            #expect(ad["ScratchQuotaReached"] == "true")
            #expect(ad["ScratchDirFileCount"] == nil, "btrfs qgroups count no inodes: the figure is left out")
            if HTCondorClassAds.available {
                let parsed = try #require(try HTCondorClassAds.parse(stat.stdout).first)
                #expect(parsed["DiskUsage"]?.type == "int")
                #expect(parsed["ScratchQuotaReached"]?.type == "bool")
            }

            let removed = try TestSupport.run(["ns-exec", "--config", image.config, "--remove-scratch-quota", scratch])
            #expect(removed.status == 0 && removed.stderr.isEmpty, "\(removed)")
            let after = Self.attributes(try TestSupport.run(["jobstat", "--config", image.config, "--self", "--scratch", scratch]).stdout)
            #expect(after["DiskUsage"] == ad["DiskUsage"], "the accounting stays for the figures after the job")
            #expect(after["ScratchQuotaKb"] == nil && after["ScratchQuotaReached"] == nil)
            // Again: nothing to remove is no error.
            #expect(try TestSupport.run(["ns-exec", "--config", image.config, "--remove-scratch-quota", scratch]).status == 0)
            // Without the limit, the directory takes what the job writes.
            let write = try TestSupport.sh("dd if=/dev/zero of=\(scratch)/more bs=1M count=12 2>&1")
            #expect(write.status == 0, "\(write)")
        }
    }

    @Test("A killed ns-exec leaves its limit, which --remove-scratch-quota takes away (the clean-up after a KILL)")
    func killedNsExec() throws {
        try withImage { image in
            let scratch = try image.subvolume("killed")
            let ns = TestSupport.tool("ns-exec")
            let script = """
                \(ns) --config \(image.config) --pid --scratch \(scratch) --scratch-quota 8M -- /bin/sleep 60 & pid=$!
                i=0; while [ ! -d \(scratch)/tmp ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
                kill -KILL $pid; wait $pid; echo "status=$?"
                """
            let run = try TestSupport.sh(script)
            #expect(run.stdout.contains("status=137"), "\(run)")
            #expect(try ScratchQuota.usage(of: scratch, settings: image.settings).byteLimit == 8 << 20, "the limit outlives ns-exec")
            let removed = try TestSupport.run(["ns-exec", "--config", image.config, "--remove-scratch-quota", scratch])
            #expect(removed.status == 0, "\(removed)")
            #expect(try ScratchQuota.usage(of: scratch, settings: image.settings).byteLimit == nil)
        }
    }

    @Test("Two jobs' quotas do not mix: each subvolume has its own qgroup, limit and figures")
    func twoJobs() throws {
        try withImage { image in
            let first = try image.subvolume("a")
            let second = try image.subvolume("b")
            #expect(
                try ScratchQuota.apply(ScratchQuotaLimit(bytes: 8 << 20), to: first, settings: image.settings)
                    != ScratchQuota.apply(ScratchQuotaLimit(bytes: 32 << 20), to: second, settings: image.settings))
            // 12 MiB fits the second's 32 MiB, though it is over the first's 8 MiB; the first stops at 8.
            #expect(try TestSupport.sh("dd if=/dev/zero of=\(second)/f bs=1M count=12 2>&1").status == 0)
            #expect(try TestSupport.sh("dd if=/dev/zero of=\(first)/f bs=1M count=12 2>&1").status != 0)
            try image.sync()
            let a = try ScratchQuota.usage(of: first, settings: image.settings)
            let b = try ScratchQuota.usage(of: second, settings: image.settings)
            #expect(a.byteLimit == 8 << 20 && b.byteLimit == 32 << 20)
            #expect(abs(Int(a.bytes / 1024) - (try image.du(first))) <= 256, "\(a)")
            #expect(abs(Int(b.bytes / 1024) - (try image.du(second))) <= 256, "\(b)")
            #expect(a.limitReached == true && b.limitReached == false)
            #expect(try ScratchQuota.remove(from: first, settings: image.settings))
            #expect(try ScratchQuota.usage(of: second, settings: image.settings).byteLimit == 32 << 20, "removing one leaves the other")
        }
    }

    @Test("What btrfs cannot do is one line and 125, with no limit left: not a subvolume, quotas off, an inode limit")
    func refusals() throws {
        try withImage { image in
            let plain = image.mount + "/plain"
            try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: false)
            let subvolume = try image.subvolume("s")
            for (directory, quota, reason) in [
                (plain, "8M", "it is on btrfs but not a subvolume"), (subvolume, "8M,100", "btrfs qgroups count bytes, not inodes"),
            ] {
                let run = try TestSupport.run(["ns-exec", "--config", image.config, "--scratch", directory, "--scratch-quota", quota, "--", "/bin/true"])
                #expect(run.status == 125, "\(run)")
                #expect(run.stderr.hasPrefix("ns-exec: cannot set a scratch quota on \(directory): \(reason)"), "\(run)")
                #expect(run.stderr.split(separator: "\n").count == 1, "\(run)")
            }
            #expect(try ScratchQuota.usage(of: subvolume, settings: image.settings).byteLimit == nil)
            // A set-up that fails after the quota (a symlink planted as the job's /tmp) takes the quota back.
            try FileManager.default.createSymbolicLink(atPath: subvolume + "/tmp", withDestinationPath: "/etc")
            let planted = try TestSupport.run([
                "ns-exec", "--config", image.config, "--pid", "--scratch", subvolume, "--scratch-quota", "8M", "--", "/bin/true",
            ])
            #expect(planted.status == 125, "\(planted)")
            #expect(try ScratchQuota.usage(of: subvolume, settings: image.settings).byteLimit == nil, "the failed run left its limit")
        }
        try withImage(quotas: false) { image in
            let subvolume = try image.subvolume("s")
            let run = try TestSupport.run(["ns-exec", "--config", image.config, "--scratch", subvolume, "--scratch-quota", "8M", "--", "/bin/true"])
            #expect(run.status == 125 && run.stderr.contains("quotas are off on its btrfs file system"), "\(run)")
            let stat = try TestSupport.run(["jobstat", "--config", image.config, "--self", "--scratch", subvolume])
            #expect(stat.status == 125 && stat.stderr.contains("quotas are off"), "\(stat)")
        }
    }

    @Test("A file system without quotas jobbox can use is refused, never a silent no-op")
    func unsupportedFileSystem() throws {
        let base = try ExecuteDirectory("jbq")
        defer {
            _ = try? TestSupport.sh("umount \(base.path)/tmpfs")
            base.remove()
        }
        let mountPoint = try base.make("tmpfs")
        #expect(try TestSupport.sh("mount -t tmpfs -o size=16m jbq-tmpfs \(mountPoint)").status == 0)
        let run = try TestSupport.run(["ns-exec", "--scratch", mountPoint, "--scratch-quota", "8M", "--", "/bin/true"])
        #expect(run.status == 125, "\(run)")
        #expect(run.stderr.contains("cannot set a scratch quota on \(mountPoint): it is on tmpfs, which has no quota jobbox can use"), "\(run)")
    }
}
