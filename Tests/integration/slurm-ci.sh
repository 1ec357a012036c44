#!/bin/bash
# slurm-ci.sh up|down: a throwaway single-node Slurm cluster (Debian 12's slurm-wlm 22.05 and munge) without
# systemd, for tests and for trying the examples by hand. The recipe is the project's reference/slurm.md.
#
#   SLURMCI_DIR=/tmp/slurmci     everything lives here (conf, munge key and socket, spool, logs, pid files)
#   SLURMCI_NODE=localhost       the node's name (slurmd -N when not localhost; give concurrent clusters their own)
#   SLURMCI_PORT=6817            slurmctld's port; slurmd takes the next one
#   SLURMCI_EXTRA_CONF='...'     more slurm.conf lines (Prolog=, Epilog=, ...)
#
# Every client, also a job user's sbatch, needs SLURM_CONF=$SLURMCI_DIR/etc/slurm.conf in its environment.
# No cgroup plugin is used (proctrack/linuxproc, task/none): jobs stay in the cgroups slurmd runs in, and
# ConstrainRAMSpace is never set, so nothing moves the machine's own processes. `up` tears down what it started
# when it fails; `down` works on a half-started cluster and with jobs still running, and removes the directory.
set -euo pipefail
D=${SLURMCI_DIR:-/tmp/slurmci}
NODE=${SLURMCI_NODE:-localhost}
PORT=${SLURMCI_PORT:-6817}
export SLURM_CONF=$D/etc/slurm.conf

# Daemons start with no signal blocked, whatever the caller's mask (a test runner's thread may block some: `down`
# stops them with TERM), and with no descriptor but stdio: munged keeps what it inherits, and a caller waiting
# for our output to end (or watching a socket of its own, as Foundation's Process does) would wait for munged.
unmasked() {
    perl -MPOSIX -e '
        sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die "sigprocmask: $!\n";
        opendir(my $fds, "/proc/self/fd") or die "/proc/self/fd: $!\n";
        my @open = grep { /^\d+$/ && $_ > 2 } readdir($fds);
        closedir($fds);
        POSIX::close($_) for @open;
        exec {$ARGV[0]} @ARGV or die "exec $ARGV[0]: $!\n"' "$@"
}

up() {
    for tool in munged slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || { echo "slurm-ci: $tool is missing (scripts/deps/integration.txt)" >&2; exit 1; }
    done
    [ ! -e "$D" ] || { echo "slurm-ci: $D exists; run down first" >&2; exit 1; }
    trap 'echo "slurm-ci: up failed; tearing down" >&2; tail -n 20 "$D"/log/*.log >&2 2>/dev/null || true; down' ERR
    mkdir -p "$D"/{etc,munge,spool/ctld,spool/d,log,run}
    chmod 755 "$D" "$D/munge" "$D/etc"   # job users' sbatch must reach the socket and the conf
    head -c 1024 /dev/urandom > "$D/munge/munge.key"
    chmod 400 "$D/munge/munge.key"
    # The daemons get no stdio of ours: a caller reading our output to its end must not wait for them.
    unmasked munged --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.socket" \
        --pid-file="$D/run/munged.pid" --seed-file="$D/munge/munged.seed" --log-file="$D/log/munged.log" \
        < /dev/null > /dev/null 2>> "$D/log/start.log"
    cat > "$SLURM_CONF" <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
${SLURMCI_EXTRA_CONF:-}
$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$NODE NodeAddr=127.0.0.1/")
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    unmasked slurmctld < /dev/null > /dev/null 2>> "$D/log/start.log"
    if [ "$NODE" = localhost ]; then node_option=(); else node_option=(-N "$NODE"); fi
    unmasked slurmd "${node_option[@]}" < /dev/null > /dev/null 2>> "$D/log/start.log"
    for _ in $(seq 150); do [ "$(sinfo -h -n "$NODE" -o %t 2>/dev/null)" = idle ] && break; sleep 0.2; done
    if [ "$(sinfo -h -n "$NODE" -o %t)" != idle ]; then sinfo -N >&2; false; fi
    trap - ERR
}

down() {
    set +e
    trap - ERR
    if [ -f "$SLURM_CONF" ] && [ -s "$D/run/slurmctld.pid" ]; then
        jobs=$(squeue -h -o %i 2>/dev/null)
        # shellcheck disable=SC2086 # one word per job id
        [ -n "$jobs" ] && scancel --full $jobs
        for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
    local pids="" p pid
    # Read every pid file first: the daemons delete theirs as they exit.
    for p in slurmd slurmctld munged; do [ -s "$D/run/$p.pid" ] && pids="$pids $(cat "$D/run/$p.pid")"; done
    # shellcheck disable=SC2086 # one word per pid
    [ -n "$pids" ] && kill $pids 2>/dev/null
    for pid in $pids; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    done
    rm -rf "$D" # only once the daemons are gone: slurmctld writes its state as it exits
    return 0
}

case ${1:-} in
    up) up ;;
    down) down ;;
    *) echo "usage: slurm-ci.sh up|down" >&2; exit 2 ;;
esac
