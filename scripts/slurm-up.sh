#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the tests and benchmarks: munged (as the munge user),
# slurmctld and slurmd (as root), this host the one node with its real CPUs and memory, accounting off.
# Idempotent: a daemon already running is left alone; the configuration is rewritten only when it changes (and
# then the daemons restart). Needs root and Debian's slurm-wlm and munge (scripts/bootstrap.sh installs them).
set -euo pipefail

conf=/etc/slurm/slurm.conf
host=$(hostname -s)
# slurmd -C prints this machine as Slurm sees it: CPUs, boards, sockets, cores, threads, RealMemory.
node=$(slurmd -C | head -n 1 | sed -e "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/")

wanted=$(cat <<CONF
# Written by scripts/slurm-up.sh: a single-node cluster for nas's tests and benchmarks.
ClusterName=nas
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job waits this long (seconds) before it starts again; the default, 120, is long for tests.
AuthInfo=cred_expire=10
# No cgroups needed (containers and CI machines often lack a writable cgroup tree).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)

changed=0
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
    printf '%s\n' "$wanted" > "$conf"
    changed=1
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# A daemon runs when its pid file names a live process of that name: a stale file's pid may belong to another
# process by now (the daemon died without removing it), which must neither count as the daemon nor be killed.
running() { [ -f "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]; }

# munged refuses to run unless its folders belong to it and are not writable by others.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! running /run/munge/munged.pid munged; then
    echo "slurm-up: starting munged"
    runuser -u munge -- /usr/sbin/munged
fi

for daemon in slurmctld slurmd; do
    pidfile=/run/$daemon.pid
    if running "$pidfile" "$daemon" && [ $changed -eq 1 ]; then
        echo "slurm-up: restarting $daemon (slurm.conf changed)"
        kill "$(cat "$pidfile")"
        for _ in $(seq 50); do running "$pidfile" "$daemon" || break; sleep 0.1; done
    fi
    if ! running "$pidfile" "$daemon"; then
        echo "slurm-up: starting $daemon"
        "/usr/sbin/$daemon"
    fi
done

# Ready when the node is idle (or already running jobs); a node left down by an earlier run is resumed.
for _ in $(seq 100); do
    state=$(sinfo -h -N -n "$host" -o '%T' 2>/dev/null || true)
    case "$state" in
        idle* | mixed* | allocated* | completing*) echo "slurm-up: node $host is $state"; exit 0 ;;
        down* | drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
done
echo "slurm-up: the node did not become idle: sinfo says '${state:-nothing}'; see /var/log/slurm/" >&2
exit 1
