#!/usr/bin/env bash
# Runs jobbox's cgroup v2 checks in a throwaway VM, since the build machines bind every controller to v1.
#
# Boots Debian's kernel (apt-get download linux-image-*-amd64) under qemu-system-x86_64 -accel tcg with a
# busybox initramfs that mounts cgroup2 with every controller enabled at the root, copies in jobbox's release
# binaries (scripts/release-build.sh, as make release builds them) with the shared
# libraries ldd lists, and runs every scripts/vm/checks/*.sh in it. The VM has three disks on virtio (the kernel's
# virtio modules, taken from the same package, are loaded by the init): /dev/vda, a sparse 256 MiB raw image in the
# work directory, for the block I/O and page cache checks; /dev/vdb and /dev/vdc, XFS and ext4 (quota, project)
# made on the host with mkfs.xfs and mkfs.ext4, for the scratch quota checks.
#
# The check interface: each check is a busybox sh script; the binaries are in /jobbox/bin (also on PATH), what
# the checks share (scripts/vm/lib/*.sh) in /jobbox/lib, the HTCondor examples in /jobbox/examples; it
# prints one line per check, `PASS <name>`, `FAIL <name>: <reason>` or `SKIP <name>: <reason>`, and may print
# anything else. The harness fails when any FAIL line appears, when no PASS does, or when the sentinel line the
# VM prints after the last check is missing (a check hung, the VM crashed).
#
# Environment: JOBBOX_VM_SKIP_BUILD=1 uses the binaries as built; JOBBOX_VM_CHECKS names another directory of
# checks (to run one while debugging it); JOBBOX_VM_CACHE (default .cache/vm) keeps the kernel and its modules
# between runs; JOBBOX_VM_TIMEOUT (seconds, default 900) bounds the VM; JOBBOX_VM_KEEP=1 keeps the work
# directory (initramfs, disk image, console log) and prints where it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
cache=${JOBBOX_VM_CACHE:-$repo/.cache/vm}
timeout_seconds=${JOBBOX_VM_TIMEOUT:-900}
checks=${JOBBOX_VM_CHECKS:-$repo/scripts/vm/checks}
tools=(cg-exec ns-exec netacct chroot-tool jobstat)
sentinel=JOBBOX-VM-CHECKS-DONE
started=$(date +%s)

say() { echo "run-v2-checks: $*" >&2; }

work=$(mktemp -d /tmp/jobbox-vm.XXXXXX)
cleanup() {
    if [ -n "${JOBBOX_VM_KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

for tool in qemu-system-x86_64 cpio gzip apt-get dpkg-deb ldd; do
    command -v "$tool" >/dev/null || { say "missing $tool (scripts/deps/cg-exec.txt lists the packages; make deps installs them)"; exit 1; }
done
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    say "needs a static busybox (package busybox-static)"
    exit 1
fi

# 1. jobbox's binaries.
if [ -z "${JOBBOX_VM_SKIP_BUILD:-}" ]; then
    say "building the release binaries"
    bash scripts/release-build.sh >&2
fi
release=$repo/.build-release/release

# 2. Debian's kernel and the modules /dev/vda needs, downloaded once into the cache.
kernel_package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends:/ {print $2; exit}' || true)
if [ -z "$kernel_package" ]; then
    say "apt knows no linux-image-amd64 yet: apt-get update"
    apt-get -o DPkg::Lock::Timeout=300 -q update >/dev/null
    kernel_package=$(apt-cache depends linux-image-amd64 | awk '/Depends:/ {print $2; exit}')
fi
kernel=$cache/$kernel_package/vmlinuz
# modules/*.ko, uncompressed, and modules/load-order: their names, each after the modules it depends on.
modules=$cache/$kernel_package/modules
# Debian builds these as modules: virtio_pci finds the disk on qemu's PCI bus, virtio_blk makes /dev/vda; xfs,
# ext4 and quota_v2 (ext4's quota files) for the scratch quota checks on /dev/vdb (XFS) and /dev/vdc (ext4), after
# crc32c_generic, which both need for their checksums but name only as a soft dependency (modprobe's, not
# insmod's).
wanted_modules=(virtio_pci virtio_blk crc32c_generic xfs ext4 quota_v2)

# The file of module $1 in the unpacked module tree $2 (file names may spell _ as -).
module_file() {
    find "$2" -name "${1//[_-]/[_-]}.ko*" | head -n 1
}

# Copies module $1 from tree $2 into directory $3 uncompressed, after the modules it depends on (the
# package has no modules.dep: depmod makes it on install; the .ko's own modinfo names its dependencies).
add_module() {
    local name=$1 tree=$2 into=$3 file dependency
    grep -qx "$name" "$into/load-order" 2>/dev/null && return 0
    file=$(module_file "$name" "$tree")
    if [ -z "$file" ]; then
        # Built into this kernel: nothing to load.
        grep -q "/$name.ko\$" "$tree/modules.builtin" 2>/dev/null && return 0
        say "$kernel_package has no module $name"
        return 1
    fi
    case $file in
    *.ko) cp "$file" "$into/$name.ko" ;;
    *.ko.xz) "$busybox" xz -dc "$file" >"$into/$name.ko" ;;
    *.ko.gz) gzip -dc "$file" >"$into/$name.ko" ;;
    *.ko.zst)
        command -v zstd >/dev/null || { say "$file needs zstd (package zstd)"; return 1; }
        zstd -qdc "$file" >"$into/$name.ko"
        ;;
    *) say "cannot read the module $file"; return 1 ;;
    esac
    [ -s "$into/$name.ko" ] || { say "cannot copy the module $file"; return 1; }
    for dependency in $(tr '\0' '\n' <"$into/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "$dependency" "$tree" "$into" || return 1
    done
    echo "$name" >>"$into/load-order"
}

# A cache made for another list of modules is made again.
if [ ! -f "$kernel" ] || [ ! -f "$modules/load-order" ] || [ "$(cat "$modules/wanted" 2>/dev/null)" != "${wanted_modules[*]}" ]; then
    say "downloading $kernel_package"
    mkdir -p "$work/deb" "$cache/$kernel_package"
    (cd "$work/deb" && apt-get download "$kernel_package" >/dev/null && dpkg-deb -x ./*.deb extracted)
    rm -rf "$modules.tmp" && mkdir "$modules.tmp"
    for module in "${wanted_modules[@]}"; do
        add_module "$module" "$(echo "$work"/deb/extracted/lib/modules/*)" "$modules.tmp" || exit 1
    done
    touch "$modules.tmp/load-order"
    echo "${wanted_modules[*]}" >"$modules.tmp/wanted"
    rm -rf "$modules" && mv "$modules.tmp" "$modules"
    cp "$work"/deb/extracted/boot/vmlinuz-* "$kernel.tmp" && mv "$kernel.tmp" "$kernel"
    rm -rf "$work/deb"
fi

# 3. The initramfs: busybox, the binaries with their libraries, the checks, an init that runs them.
root=$work/initramfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root,jobbox/bin,jobbox/checks,lib/modules}
cp "$busybox" "$root/bin/busybox"
cp "$modules"/*.ko "$modules/load-order" "$root/lib/modules/"
copied=()
for tool in "${tools[@]}"; do
    [ -x "$release/$tool" ] || continue
    strip -o "$root/jobbox/bin/$tool" "$release/$tool" 2>/dev/null || cp "$release/$tool" "$root/jobbox/bin/$tool"
    copied+=("$tool")
    # A static tool has no libraries (ldd says "not a dynamic executable").
    for library in $(ldd "$release/$tool" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        [ -e "$root$library" ] || cp -L --parents "$library" "$root"
    done
done
[ ${#copied[@]} -gt 0 ] || { say "no jobbox binaries in $release"; exit 1; }
# The example wrappers and the shell they run in (checks/htcondor-wrapper.sh); what the checks share.
mkdir -p "$root/jobbox/examples" "$root/jobbox/lib"
cp -R examples/htcondor "$root/jobbox/examples/"
cp scripts/vm/lib/*.sh "$root/jobbox/lib/"
# chattr (e2fsprogs) for the scratch quota check: may the job change a file's project id, with and without the fence.
# getent (libc-bin): the static tools ask the node's user database through it, as on every glibc system.
for extra in bash chattr getent; do
    extra_path=$(command -v "$extra") || continue
    cp "$extra_path" "$root/bin/$extra"
    for library in $(ldd "$extra_path" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        [ -e "$root$library" ] || cp -L --parents "$library" "$root"
    done
done
cp "$checks"/*.sh "$root/jobbox/checks/"
printf 'root:x:0:0:root:/root:/bin/sh\njob:x:1000:1000:job:/tmp:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\njob:x:1000:\n' >"$root/etc/group"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s
# The initramfs's rootfs has no parent mount, and pivot_root(2) (ns-exec --chroot) cannot leave such a root:
# as a node booted from a disk, the checks run in a bind mount of it, moved onto / and made the root.
if [ -z "\${JOBBOX_VM_ROOT_MOVED:-}" ]; then
    mkdir -p /.root && mount --bind / /.root && cd /.root && mount --move . / && JOBBOX_VM_ROOT_MOVED=1 exec chroot . /init
    echo "JOBBOX-VM: cannot move the root onto a bind mount of itself"
fi
export PATH=/jobbox/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
for module in \$(cat /lib/modules/load-order); do
    insmod /lib/modules/\$module.ko || echo "JOBBOX-VM: insmod \$module failed"
done
i=0
while [ ! -b /dev/vda ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i + 1)); done
[ -b /dev/vda ] || echo "JOBBOX-VM: no /dev/vda after loading \$(cat /lib/modules/load-order | tr '\n' ' ')"
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for controller in \$(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+\$controller" >/sys/fs/cgroup/cgroup.subtree_control
done
echo "JOBBOX-VM: kernel \$(uname -r), \$(nproc) cpus, controllers: \$(cat /sys/fs/cgroup/cgroup.subtree_control), disks: \$(echo \$(ls /sys/block | grep vd))"
for check in /jobbox/checks/*.sh; do
    name=\${check##*/}
    echo "JOBBOX-VM: running \$name"
    cd /tmp
    timeout 300 sh "\$check" </dev/null 2>&1 || echo "FAIL \${name%.sh}: the check script exited with status \$?"
done
echo "$sentinel"
poweroff -f
EOF
chmod 0755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"

# 4. Boot. No KVM here: tcg. The console is the serial port, captured to a log. The disk is sparse: it takes
# only what the checks write.
truncate -s 256M "$work/vda.img"
# Scratch quota disks, made here because the VM has no mkfs.xfs or mkfs.ext4: XFS (its smallest size is 300 MiB)
# and ext4 with the quota and project features; both sparse, mounted with prjquota by checks/scratch-quota.sh.
truncate -s 320M "$work/vdb.img"
truncate -s 64M "$work/vdc.img"
command -v mkfs.xfs >/dev/null && mkfs.xfs -q "$work/vdb.img"
command -v mkfs.ext4 >/dev/null && mkfs.ext4 -q -F -O quota,project "$work/vdc.img"
say "booting $kernel_package with ${copied[*]} and checks: $(cd "$checks" && echo *.sh)"
status=0
timeout "$timeout_seconds" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$kernel" -initrd "$work/initramfs.gz" -drive "file=$work/vda.img,format=raw,if=virtio" \
    -drive "file=$work/vdb.img,format=raw,if=virtio" -drive "file=$work/vdc.img,format=raw,if=virtio" \
    -append "console=ttyS0 quiet loglevel=1 panic=-1" </dev/null >"$work/console.log" 2>&1 || status=$?
# The serial console adds CRs, and the firmware's terminal escapes can precede the first line.
tr -d '\r' <"$work/console.log" | sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' >"$work/console.txt"

# 5. The verdict.
grep -E '^(PASS|FAIL|SKIP|JOBBOX-VM:)' "$work/console.txt" || true
passes=$(grep -c '^PASS ' "$work/console.txt" || true)
failures=$(grep -c '^FAIL ' "$work/console.txt" || true)
skips=$(grep -c '^SKIP ' "$work/console.txt" || true)
elapsed=$(($(date +%s) - started))
if ! grep -qx "$sentinel" "$work/console.txt"; then
    say "the VM did not finish the checks (qemu status $status); the console's last lines:"
    tail -n 30 "$work/console.txt" >&2
    exit 1
fi
if [ "$failures" -gt 0 ] || [ "$passes" -eq 0 ]; then
    say "$failures failed, $passes passed, $skips skipped (${elapsed}s)"
    exit 1
fi
say "all $passes checks passed, $skips skipped (${elapsed}s)"
