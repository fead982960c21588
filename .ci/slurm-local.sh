#!/usr/bin/env bash
# Single-node SLURM "cluster" on localhost for the SLURM tests (Debian 12, root, no systemd, no
# cgroups): the project's own copy of the recipe in ../shared/notes/slurm-local.sh.
#   bash slurm-local.sh up      # install (if needed), configure, start munged/slurmctld/slurmd
#   bash slurm-local.sh down    # stop every daemon this script started, by PID, and remove the
#                               # slurm.conf and gres.conf it wrote (see down())
# Env knobs:
#   SLURM_WITH_DBD=1   also start MariaDB + slurmdbd so that `sacct`/`sacctmgr` work (+~25 s)
#   SLURM_FAKE_GPU=1   advertise one fake GPU (gres.conf File=/dev/null) so --gpus=1 jobs run
set -euo pipefail
S=${SLURM_CI_DIR:-/tmp/slurm-ci}
WITH_DBD=${SLURM_WITH_DBD:-0}
FAKE_GPU=${SLURM_FAKE_GPU:-0}
export DEBIAN_FRONTEND=noninteractive
MARK="# written by sonoflow's .ci/slurm-local.sh"

wait_for() {  # wait_for <seconds> <command...>
  local t=$1; shift
  for _ in $(seq 1 $((t * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timeout waiting for: $*" >&2; return 1
}

down() {
  local f pid
  for f in "$S/slurmd.pid" "$S/slurmctld.pid" "$S/slurmdbd.pid" /run/mysqld/mysqld.pid /run/munge/munged.pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$f"
  done
  # A slurm.conf naming a controller that is gone makes every scontrol call wait for it (~9 s); the
  # SLURM executor plugin runs one when snakemake starts, so every later snakemake run on this
  # machine would pay that. Without the file scontrol fails at once. Only the files written here
  # (first line MARK) are removed.
  for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    [ -f "$f" ] && [ "$(head -1 "$f")" = "$MARK" ] && rm -f "$f"
  done
  return 0
}

up() {
  local pkgs="slurmctld slurmd slurm-client munge"
  [ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  if ! dpkg -s $pkgs >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  fi
  down  # idempotent restart
  rm -rf "$S/state" "$S/spool"
  mkdir -p "$S/state" "$S/spool" "$S/log"

  # --- munge ---
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge; chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 bash -c 'munge -n | unmunge'

  # --- slurm.conf ---
  local node acct
  node=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]*/NodeName=localhost NodeAddr=127.0.0.1/')
  [ "$FAKE_GPU" = 1 ] && node="$node Gres=gpu:1"
  if [ "$WITH_DBD" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux"
  else
    acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  fi
  cat > /etc/slurm/slurm.conf <<EOF
$MARK
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$acct
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
GresTypes=gpu
$node
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  if [ "$FAKE_GPU" = 1 ]; then
    printf '%s\n%s\n' "$MARK" "NodeName=localhost Name=gpu File=/dev/null" > /etc/slurm/gres.conf
  else
    rm -f /etc/slurm/gres.conf
  fi

  # --- optional accounting: MariaDB + slurmdbd ---
  if [ "$WITH_DBD" = 1 ]; then
    mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
    /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
      --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 >"$S/log/mariadb.log" 2>&1 &
    wait_for 30 mysqladmin --socket=/run/mysqld/mysqld.sock ping
    mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$S/log/slurmdbd.log
PidFile=$S/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    /usr/sbin/slurmdbd
    wait_for 30 sacctmgr -n show cluster
    sacctmgr -n show cluster format=cluster | grep -qw ci || sacctmgr -i add cluster ci >/dev/null
  fi

  # --- slurmctld + slurmd (both daemonize and write their pid files) ---
  /usr/sbin/slurmctld
  wait_for 30 scontrol ping
  /usr/sbin/slurmd -N localhost
  wait_for 60 bash -c 'sinfo -h -n localhost -o %t | grep -qx idle'
  sinfo
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
