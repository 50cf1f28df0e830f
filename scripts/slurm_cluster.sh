#!/usr/bin/env bash
# A real Slurm cluster of two nodes on this machine (Debian's Slurm), for the slurm tests and for trying
# sweeps end to end without a cluster. Needs root (apt-get, daemons, a network namespace). Idempotent.
#   bash scripts/slurm_cluster.sh start    # install if needed, write the config, start, wait for a job
#   bash scripts/slurm_cluster.sh stop
#
# Node vljepa-n1 is this machine (10.77.0.1, the host side of a veth pair); node vljepa-n2 is a slurmd in
# the network namespace vljepa-n2 (10.77.0.2), so the two have their own addresses as two machines would:
# Debian's Slurm is built without --enable-multiple-slurmd (two slurmd on one address fail with "Duplicated
# NodeHostName"). Partition debug (the default) is vljepa-n1 alone; partition two is both nodes. Where no
# network namespace can be made, the cluster is vljepa-n1 alone, on 127.0.0.1.
set -euo pipefail
STATE=${SLURM_STATE_DIR:-/tmp/vljepa-slurm}
CONF=/etc/slurm/slurm.conf
NET=10.77.0       # the cluster's network: .1 is vljepa-n1, .2 is vljepa-n2
NETNS=vljepa-n2   # the second node's network namespace

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null \
      || ! command -v ip >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge iproute2 >/dev/null
  fi
}

# The second node's network: a veth pair, one end in the namespace. Returns 1 where namespaces are not allowed.
two_node_network() {
  ip netns list 2>/dev/null | grep -qw "$NETNS" || ip netns add "$NETNS" 2>/dev/null || return 1
  if ! ip link show vljepa0 >/dev/null 2>&1; then
    ip link add vljepa0 type veth peer name vljepa1 || return 1
    ip link set vljepa1 netns "$NETNS"
    ip addr add "$NET.1/24" dev vljepa0
    ip link set vljepa0 up
    ip netns exec "$NETNS" ip addr add "$NET.2/24" dev vljepa1
    ip netns exec "$NETNS" ip link set vljepa1 up
    ip netns exec "$NETNS" ip link set lo up
  fi
}

# Node names resolve to node addresses (a job's first node is its rendezvous host)
hosts_entries() {
  local kept
  kept=$(grep -v ' vljepa-n[12]$' /etc/hosts || true)
  {
    echo "$kept"
    if [ "$1" = 2 ]; then printf '%s vljepa-n1\n%s vljepa-n2\n' "$NET.1" "$NET.2"; else echo "127.0.0.1 vljepa-n1"; fi
  } > /etc/hosts   # rewritten in place: /etc/hosts may be a bind mount that cannot be replaced
}

write_config() {
  local nodes=$1 node addr1
  mkdir -p "$STATE"/{spool-vljepa-n1,spool-vljepa-n2,state,log} /etc/slurm
  node=$(slurmd -C | head -1 | sed -e 's/NodeName=[^ ]* //')
  addr1=$([ "$nodes" = 2 ] && echo "$NET.1" || echo 127.0.0.1)
  # a task's gloo binds to the interface of its own node's address (each node sees only its own)
  cat > "$STATE/taskprolog.sh" <<'PROLOG'
#!/bin/sh
ifname=$(ip -o -4 addr show 2>/dev/null | awk '$4 ~ /^10\.77\.0\./ {print $2; exit}')
[ -n "$ifname" ] && echo "export GLOO_SOCKET_IFNAME=$ifname"
exit 0
PROLOG
  chmod +x "$STATE/taskprolog.sh"
  cat > "$CONF" <<EOF
ClusterName=vljepa
SlurmctldHost=$(hostname -s)($addr1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=$STATE/taskprolog.sh
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool-%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
MailProg=/bin/true
KillWait=5
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
NodeName=vljepa-n1 $node NodeAddr=$addr1 State=UNKNOWN
PartitionName=debug Nodes=vljepa-n1 Default=YES MaxTime=INFINITE State=UP
EOF
  if [ "$nodes" = 2 ]; then
    cat >> "$CONF" <<EOF
NodeName=vljepa-n2 $node NodeAddr=$NET.2 State=UNKNOWN
PartitionName=two Nodes=vljepa-n[1-2] MaxTime=INFINITE State=UP
EOF
  fi
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

# The PID of this cluster's daemon, from the PID file its config names (slurmctld.pid, slurmd-<node>.pid),
# if that process is alive and is that daemon (a PID file left by a daemon that died may name a reused PID)
daemon_pid() {
  local file="$STATE/$1.pid" pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${1%%-*}" ] || return 1
  echo "$pid"
}

start() {
  local nodes=1 partitions=debug p out=""
  install
  if two_node_network; then
    nodes=2 partitions="debug two"
  else
    echo "note: no network namespace here (ip netns add failed): a single-node cluster" >&2
  fi
  write_config "$nodes"
  hosts_entries "$nodes"
  start_munge
  daemon_pid slurmctld >/dev/null || slurmctld -c   # -c: a clean state (no jobs left from an old cluster)
  daemon_pid slurmd-vljepa-n1 >/dev/null || slurmd -N vljepa-n1
  if [ "$nodes" = 2 ]; then  # nsenter, not ip netns exec: that remounts /sys, and slurmd needs its cgroup mount
    daemon_pid slurmd-vljepa-n2 >/dev/null || nsenter --net="/run/netns/$NETNS" slurmd -N vljepa-n2
  fi
  # batch scheduling starts a few seconds after slurmctld: wait for a real job on every partition
  for p in $partitions; do
    for _ in $(seq 1 60); do
      if out=$(timeout 20 srun -p "$p" -N "$([ "$p" = two ] && echo 2 || echo 1)" -t 1 /bin/true 2>&1); then
        continue 2
      fi
      sleep 1
    done
    echo "slurm did not run a smoke job on partition $p; last output: $out" >&2
    tail -20 "$STATE"/log/*.log >&2 || true
    return 1
  done
  sinfo -h -o "slurm up: %P %D node(s) %t"
}

# Stop the daemons this script started (by their PID files), never other processes of the same name
stop() {
  local name pid
  if daemon_pid slurmctld >/dev/null; then
    scancel --user=root 2>/dev/null || true
  fi
  for name in slurmd-vljepa-n1 slurmd-vljepa-n2 slurmctld; do
    if pid=$(daemon_pid "$name"); then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      echo "stopped ${name%%-*} ($pid)"
    fi
    rm -f "$STATE/$name.pid"
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
