#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for tests/test_slurm.py: installs Debian's slurm-wlm and munge
# when root, writes /etc/slurm/slurm.conf for this host, starts munged, slurmctld and slurmd (no systemd:
# the daemons themselves), then waits for the node to be idle. Does nothing when `sinfo` already answers.
set -uo pipefail

answers() { command -v sinfo >/dev/null && timeout 10 sinfo -h >/dev/null 2>&1; }
fail() { echo "slurm: $*" >&2; exit 1; }

answers && exit 0
[ "$(id -u)" = 0 ] || fail "not root: cannot install or start SLURM (the SLURM test skips)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || fail "no apt-get: install slurm-wlm and munge by hand (the SLURM test skips)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; } \
        || fail "apt-get install slurm-wlm munge failed"
fi

node=$(hostname -s)
cpus=$(nproc)
free_mb=$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)
memory=$(( free_mb * 9 / 10 ))   # a bit below the free memory, so that the node is not drained as short of it
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
if ! grep -q "^NodeName=$node " "$conf" 2>/dev/null; then
    cat > "$conf" <<CONF
# A one-node test cluster written by tests/services/slurm.sh (no cgroups, no accounting daemon).
ClusterName=wsss
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$node CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
fi
# No cgroups wanted: a cgroup.conf of an earlier install would make slurmd look for them.
rm -f /etc/slurm/cgroup.conf

if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c "munged --force" || munged --force || fail "munged did not start"
pgrep -x slurmctld >/dev/null || slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
pgrep -x slurmd >/dev/null || slurmd || fail "slurmd did not start (see /var/log/slurm/slurmd.log)"

for _ in $(seq 60); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null)
    case "$state" in
        idle*|mix*|alloc*) exit 0 ;;
        down*|drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 ;;
    esac
    sleep 1
done
fail "node $node not idle after 60 s (state: ${state:-none}; see /var/log/slurm/)"
