#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine (Debian's Slurm), for the slurm tests and for trying
# sweeps end to end without a cluster. Needs root (apt-get, daemons). Idempotent.
#   bash scripts/slurm_cluster.sh start    # install if needed, write the config, start, wait for a job
#   bash scripts/slurm_cluster.sh stop
set -euo pipefail
STATE=${SLURM_STATE_DIR:-/tmp/vljepa-slurm}
CONF=/etc/slurm/slurm.conf

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
  fi
}

write_config() {
  mkdir -p "$STATE"/{spool,state,log} /etc/slurm
  local node
  node=$(slurmd -C | head -1 | sed -e 's/NodeName=[^ ]*/NodeName=localhost/')
  # leave a little memory to the system: Slurm refuses jobs asking for more than RealMemory
  cat > "$CONF" <<EOF
ClusterName=vljepa
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
MailProg=/bin/true
KillWait=5
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c "/usr/sbin/munged" || runuser -u munge -- /usr/sbin/munged
  fi
}

# The PID of this cluster's daemon `name`, from the PID file its config names, if that process is alive and
# is that daemon (a PID file left by a daemon that died may name a reused PID)
daemon_pid() {
  local name=$1 file="$STATE/$1.pid" pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  echo "$pid"
}

start() {
  install
  write_config
  start_munge
  daemon_pid slurmctld >/dev/null || slurmctld -c   # -c: a clean state (no jobs left from an old cluster)
  daemon_pid slurmd >/dev/null || slurmd -N localhost
  # batch scheduling starts a few seconds after slurmctld: wait for a real job, not only the idle state
  for _ in $(seq 1 60); do
    if out=$(timeout 20 srun -N1 -n1 -t 1 /bin/true 2>&1); then
      sinfo -h -o "slurm up: %P %D node(s) %t"
      return 0
    fi
    sleep 1
  done
  echo "slurm did not run a smoke job; last output: $out" >&2
  tail -20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  return 1
}

# Stop the daemons this script started (by their PID files), never other processes of the same name
stop() {
  local name pid
  if daemon_pid slurmctld >/dev/null; then
    scancel --user=root 2>/dev/null || true
  fi
  for name in slurmd slurmctld; do
    if pid=$(daemon_pid "$name"); then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      echo "stopped $name ($pid)"
    fi
    rm -f "$STATE/$name.pid"
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
