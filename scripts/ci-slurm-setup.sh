#!/usr/bin/env bash
# Single-node Slurm on localhost for the Slurm executor's tests (tests/slurm.rs).
# Debian/Ubuntu, as root, without systemd; adapted from a reference recipe. Idempotent: does
# nothing when a Slurm node is already usable. `.ci/run` calls it under `timeout 150` and
# then sets RUNNER_REQUIRE_SLURM=1, so the Slurm tests fail if this did not work.
# The node advertises SLURM_CPUS (default 16) CPUs whatever the machine has: the tests'
# items are tiny, and Slurm's per-task launch latency, not CPU, bounds their throughput.
set -euo pipefail
T0=$(date +%s%N)
ts() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[%3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"; }

if timeout 2 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
  ts "slurm already running: $(sinfo -h -o '%N %t %c')"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "starting slurm needs root"; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  ts "apt-get install done"
fi

SD=${SLURM_TEST_DIR:-/tmp/slurmtest}
mkdir -p "$SD"/{spool/ctld,spool/d,log,run,shared}
chmod 777 "$SD/shared"

# munge: postinst already created /etc/munge/munge.key; create one if missing.
[ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key; }
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
ts "munged started (pid $(cat /run/munge/munged.pid 2>/dev/null || echo ?))"
munge -n | unmunge >/dev/null && ts "munge round-trip ok"

# No slurmdbd: the executor uses squeue (and sacct only where accounting works).
ACCT_LINES="AccountingStorageType=accounting_storage/none"
HOST=${SLURM_NODE_NAME:-localhost}   # slurmd is started with -N so it need not match `hostname -s`
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
${ACCT_LINES}
JobCompType=jobcomp/filetxt
JobCompLoc=$SD/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$SD/spool/ctld
SlurmdSpoolDir=$SD/spool/d
SlurmctldPidFile=$SD/run/slurmctld.pid
SlurmdPidFile=$SD/run/slurmd.pid
SlurmctldLogFile=$SD/log/slurmctld.log
SlurmdLogFile=$SD/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=3600
MaxArraySize=100001
MaxJobCount=200000
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${SLURM_CPUS:-16} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
CONF
ts "slurm.conf written"

/usr/sbin/slurmctld -i   # -i: ignore/clear saved state
ts "slurmctld forked"
/usr/sbin/slurmd -N "$HOST"
ts "slurmd forked"
for i in $(seq 1 60); do
  st=$(awk '{print $3}' "/proc/$(cat $SD/run/slurmctld.pid 2>/dev/null)/stat" 2>/dev/null || echo X)
  case $st in Z|X) echo "slurmctld died"; tail -5 $SD/log/slurmctld.log; exit 1;; esac
  if timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then break; fi
  sleep 0.5
done
timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)' || { echo "the slurm node did not become idle"; tail -5 $SD/log/slurmd.log; exit 1; }
touch "$SD/.started-by-ci"
ts "node state: $(sinfo -h -o '%N %t %c')"
