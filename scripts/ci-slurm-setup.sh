#!/usr/bin/env bash
# Minimal single-node Slurm on localhost for CI (Debian 12, root, no systemd).
set -euo pipefail
T0=$(date +%s.%N)
ts() { printf '[%6.2fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*"; }

if ! command -v slurmctld >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      slurmctld slurmd slurm-client munge bc >/dev/null
  ts "apt-get install done"
fi

SD=${SLURM_TEST_DIR:-/tmp/slurmtest}
mkdir -p "$SD"/{spool/ctld,spool/d,log,run,shared}
chmod 777 "$SD/shared"

# munge: postinst already created /etc/munge/munge.key; create one if missing.
[ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key; }
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged
ts "munged started (pid $(cat /run/munge/munged.pid 2>/dev/null || echo ?))"
munge -n | unmunge >/dev/null && ts "munge round-trip ok"

if [ "${SLURM_ACCOUNTING:-0}" = 1 ]; then
  bash "$(dirname "$0")/setup-slurmdbd.sh"
  /usr/sbin/slurmdbd
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.2; done
  (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null || { echo "slurmdbd did not come up"; tail -5 $SD/log/slurmdbd.log; exit 1; }
  ts "slurmdbd up"
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none"
fi
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
  kill -0 "$(cat $SD/run/slurmctld.pid 2>/dev/null)" 2>/dev/null || { echo "slurmctld died"; tail -5 $SD/log/slurmctld.log; exit 1; }
  if timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then break; fi
  sleep 0.5
done
ts "node state: $(sinfo -h -o '%N %t %c')"
