#!/bin/sh
# Scratch quotas on XFS and ext4 project quotas, in the VM of scripts/vm/run-v2-checks.sh (this machine's kernel
# has no quota format for either; the btrfs back end is tested on the build machine, Tests/JobboxQuotaTests).
# busybox sh, as root; /dev/vdb is XFS and /dev/vdc ext4 with the quota and project features, both made on the
# host. Prints "PASS <name>", "FAIL <name>: <reason>" or "SKIP <name>: <reason>" lines.
#
# Per file system: a job (uid 1000, as ext4 lets root past its limits) past its byte limit gets an error in its
# /tmp; jobstat --scratch's DiskUsage and ScratchDirFileCount match du and find; an inode limit stops the job's
# files; two jobs' projects do not mix; --remove-scratch-quota takes the limit and the record away; a file
# system mounted without prjquota is refused with 125. Everything is unmounted and removed on exit.

BIN=${JOBBOX_BIN:-/jobbox/bin}
STATE=/run/jbq-state$$
CONF=/tmp/jbq$$.conf
MNT=/mnt/jbq$$

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }

# The value of attribute $2 in ad text $1.
attr() { echo "$1" | sed -n "s/^$2 = //p"; }

# The records ns-exec keeps of the project ids it gave (every file of STATE_DIR/scratch-quota but its lock).
count_records() {
    n=0
    for record in "$STATE"/scratch-quota/*; do
        [ -f "$record" ] && [ "${record##*/}" != lock ] && n=$((n + 1))
    done
    echo "$n"
}

cleanup() {
    for dir in "$MNT"/*; do
        [ -d "$dir" ] && umount "$dir" 2>/dev/null
    done
    rm -rf "$MNT" "$STATE" "$CONF"
}
trap cleanup EXIT

mkdir -p "$MNT" /run
echo "STATE_DIR = $STATE" >"$CONF"

# check_fs NAME DEVICE TYPE
check_fs() {
    name=scratch-quota-$1
    device=$2
    mnt=$MNT/$1
    if [ ! -b "$device" ]; then
        skip "$name" "no $device (mkfs.$3 missing on the host?)"
        return
    fi
    mkdir -p "$mnt"
    # Without prjquota first: a clear refusal, not a silent no-op.
    if mount -t "$3" "$device" "$mnt"; then
        mkdir -p "$mnt/plain"
        out=$("$BIN/ns-exec" --config "$CONF" --scratch "$mnt/plain" --scratch-quota 4M -- /bin/true 2>&1)
        status=$?
        case "$status:$out" in
        "125:ns-exec: cannot set a scratch quota on $mnt/plain: project quotas are off"*) pass "$name-off-refused" ;;
        *) fail "$name-off-refused" "status $status: $out" ;;
        esac
        rm -rf "$mnt/plain"
        umount "$mnt"
    fi
    if ! mount -t "$3" -o prjquota "$device" "$mnt"; then
        fail "$name" "cannot mount $device with prjquota"
        return
    fi
    mkdir "$mnt/job1" "$mnt/job2"
    chown 1000:1000 "$mnt/job1" "$mnt/job2"
    chmod 0700 "$mnt/job1" "$mnt/job2"

    # 1. Bytes: 4 MiB (and 40 inodes); the job writes two small files, then 10 MiB.
    out=$("$BIN/ns-exec" --config "$CONF" --pid --scratch "$mnt/job1" --scratch-quota 4M,40 --user job -- \
        /bin/sh -c 'echo a >/tmp/a; mkdir /tmp/d; echo b >/tmp/d/b; dd if=/dev/zero of=/tmp/big bs=1M count=10 2>&1; echo "dd=$?"' 2>&1)
    error=$(echo "$out" | grep -i -o -E 'quota exceeded|no space left on device' | head -n 1)
    case "$out" in
    *dd=0*) fail "$name-bytes" "10 MiB went into a 4 MiB quota: $out" ;;
    *dd=*) if [ -n "$error" ]; then pass "$name-bytes ($error)"; else fail "$name-bytes" "dd failed for another reason: $out"; fi ;;
    *) fail "$name-bytes" "the job did not run: $out" ;;
    esac
    if [ ! -f "$mnt/job1/tmp/big" ] || [ ! -f "$mnt/job1/tmp/d/b" ]; then
        fail "$name-bytes" "the job's files are not in the scratch dir"
    fi

    # 2. The figures, from the project quota: DiskUsage against du, ScratchDirFileCount against find.
    sync
    ad=$("$BIN/jobstat" --config "$CONF" --self --scratch "$mnt/job1" 2>&1)
    du_kib=$(du -sk "$mnt/job1" | cut -f1)
    files=$(find "$mnt/job1" | wc -l)
    usage=$(attr "$ad" DiskUsage)
    count=$(attr "$ad" ScratchDirFileCount)
    if [ -z "$usage" ] || [ $((usage - du_kib)) -gt 16 ] || [ $((du_kib - usage)) -gt 16 ]; then
        fail "$name-diskusage" "DiskUsage '$usage' KiB, du $du_kib KiB: $ad"
    else
        pass "$name-diskusage ($usage KiB, du $du_kib KiB)"
    fi
    if [ "$count" = "$files" ]; then pass "$name-filecount ($count)"; else fail "$name-filecount" "ScratchDirFileCount '$count', find $files: $ad"; fi
    if [ "$(attr "$ad" ScratchQuotaKb)" = 4096 ] && [ "$(attr "$ad" ScratchQuotaFiles)" = 40 ] && [ "$(attr "$ad" ScratchQuotaReached)" = true ]; then
        pass "$name-limits"
    else
        fail "$name-limits" "$ad"
    fi

    # 3. Inodes: 8 at most, the scratch dir and what ns-exec made in it (tmp; var/tmp where the VM has one) included.
    # shellcheck disable=SC2016 # the job's own shell expands $n
    out=$("$BIN/ns-exec" --config "$CONF" --pid --scratch "$mnt/job2" --scratch-quota 64M,8 --user job -- \
        /bin/sh -c 'n=0; while [ $n -lt 10 ]; do touch /tmp/f$n || break; n=$((n + 1)); done; echo "made=$n"' 2>&1)
    inodes=$(find "$mnt/job2" | wc -l)
    case "$inodes:$out" in
    8:*made=[0-7]*) pass "$name-inodes ($(echo "$out" | grep -i -o -E 'quota exceeded|no space left on device' | head -n 1))" ;;
    *) fail "$name-inodes" "$inodes inodes under an 8-inode limit: $out" ;;
    esac

    # 4. Two jobs: job2's figures are its own, job1's unchanged.
    sync
    ad2=$("$BIN/jobstat" --config "$CONF" --self --scratch "$mnt/job2" 2>&1)
    again=$("$BIN/jobstat" --config "$CONF" --self --scratch "$mnt/job1" 2>&1)
    if [ "$(attr "$ad2" ScratchDirFileCount)" = 8 ] && [ "$(attr "$ad2" ScratchQuotaKb)" = 65536 ] && [ "$(attr "$again" DiskUsage)" = "$usage" ] \
        && [ "$(attr "$again" ScratchDirFileCount)" = "$count" ]; then
        pass "$name-two-jobs"
    else
        fail "$name-two-jobs" "job2: $ad2 / job1 again: $again"
    fi

    # 5. Removal: the limit and the record go, the figures stay; a second removal is no error.
    records=$(count_records)
    if "$BIN/ns-exec" --config "$CONF" --remove-scratch-quota "$mnt/job1" && "$BIN/ns-exec" --config "$CONF" --remove-scratch-quota "$mnt/job1"; then
        after=$("$BIN/jobstat" --config "$CONF" --self --scratch "$mnt/job1" 2>&1)
        left=$(count_records)
        if [ "$records" = 2 ] && [ "$left" = 1 ]; then
            pass "$name-remove"
        else
            fail "$name-remove" "records before $records, after $left; jobstat: $after"
        fi
    else
        fail "$name-remove" "--remove-scratch-quota failed"
    fi
    "$BIN/ns-exec" --config "$CONF" --remove-scratch-quota "$mnt/job2"
    # 6. The fence: the kernel lets a file's owner give it another project id, which would take its blocks out of
    # the job's project. Without a quota the job can (what the fence is for); under one ns-exec's seccomp fence
    # refuses it.
    # shellcheck disable=SC2016 # the job's own shell expands $?
    probe='echo x >/tmp/p; chattr -p 7 /tmp/p; echo "chattr=$?"'
    open=$("$BIN/ns-exec" --config "$CONF" --pid --scratch "$mnt/job2" --scratch-quota none --user job -- /bin/sh -c "$probe" 2>&1)
    fenced=$("$BIN/ns-exec" --config "$CONF" --pid --scratch "$mnt/job2" --scratch-quota 64M --user job -- /bin/sh -c "$probe" 2>&1)
    "$BIN/ns-exec" --config "$CONF" --remove-scratch-quota "$mnt/job2"
    case "$open" in
    *chattr=0*) pass "$name-project-id-open" ;;
    *) fail "$name-project-id-open" "without a quota the job could not set a project id (the check shows nothing): $open" ;;
    esac
    case "$fenced" in
    *"Operation not permitted"*chattr=1*) pass "$name-project-id-fenced" ;;
    *) fail "$name-project-id-fenced" "the job under a quota changed its file's project id: $fenced" ;;
    esac
    umount "$mnt" || fail "$name" "cannot unmount $mnt"
}

check_fs xfs /dev/vdb xfs
check_fs ext4 /dev/vdc ext4
