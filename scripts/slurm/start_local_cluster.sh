#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine, for tests (tests/test_slurm.py, `make slurm-test`).
#
#   sudo scripts/slurm/start_local_cluster.sh        # needs root and Debian's packages:
#   apt-get install -y slurm-wlm slurmdbd munge mariadb-server
#   export SLURM_CONF=/var/tmp/drrdn-slurm/etc/slurm.conf   # printed at the end; sbatch needs it
#   scripts/slurm/stop_local_cluster.sh [--purge]
#
# Everything lives in $DRRDN_SLURM_DIR (default /var/tmp/drrdn-slurm): configuration, a munge
# key generated here (munged serves it on the default socket, /run/munge), a private MariaDB data folder (accounting: submitit asks `sacct` whether a
# job ended), state, spool and logs (log/). Daemons: munged (its own key and socket), mariadbd
# (unix socket only, no TCP), slurmdbd, slurmctld and slurmd as root, the node being this host
# at 127.0.0.1 with all its CPUs. No cgroups are needed (proctrack/linuxproc, task/none).
# Slurm 22.05 has no option to bind its daemons to loopback only: slurmctld (6817), slurmd
# (6818) and slurmdbd (6819) listen on all interfaces, and rely on munge to refuse anyone
# without this key. Run it only on a machine whose ports are firewalled, or none reachable.
set -euo pipefail

DIR=${DRRDN_SLURM_DIR:-/var/tmp/drrdn-slurm}
HOST=$(hostname -s)
CPUS=${DRRDN_SLURM_CPUS:-$(nproc)}
MEM_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - 512 ))
CONF=$DIR/etc/slurm.conf
MUNGE_SOCKET=/run/munge/munge.socket.2  # the default: every Slurm client finds it unconfigured
DB_SOCKET=/run/mysqld/mysqld.sock   # libmariadb's default: slurmdbd cannot name another
export SLURM_CONF=$CONF

die() { echo "start_local_cluster: $*" >&2; exit 1; }
wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND until it succeeds
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up within $1 s; see the logs in $DIR/log, $DIR/munge and $DIR/mysql"
        sleep 0.5
    done
}

[ "$(id -u)" = 0 ] || die "run as root (the daemons need it)"
for tool in munged mungekey mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacct; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y slurm-wlm slurmdbd munge mariadb-server"
done
if [ -f "$CONF" ] && timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; then
    echo "cluster already up; export SLURM_CONF=$CONF"; exit 0
fi
mkdir -p "$DIR"/{etc,log,run,state,spool,munge,mysql}
chmod 0755 "$DIR"

# munge: a key of our own, on the default socket
chown munge:munge "$DIR/munge" && chmod 0755 "$DIR/munge"
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
[ -s "$DIR/munge/munge.key" ] || runuser -u munge -- mungekey --create --keyfile="$DIR/munge/munge.key"
if ! [ -S "$MUNGE_SOCKET" ] || ! munge --socket="$MUNGE_SOCKET" -n </dev/null >/dev/null 2>&1; then
    runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
fi
wait_for 10 munged munge --socket="$MUNGE_SOCKET" -n

# MariaDB for accounting: a private data folder, unix socket only
chown mysql:mysql "$DIR/mysql"
[ -d "$DIR/mysql/mysql" ] || mariadb-install-db --user=mysql --datadir="$DIR/mysql" \
    --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1; then
    mariadbd --user=mysql --datadir="$DIR/mysql" --skip-networking --socket="$DB_SOCKET" \
        --pid-file="$DIR/mysql/mariadbd.pid" --log-error="$DIR/mysql/mariadbd.log" &
    disown
fi
wait_for 30 mariadbd mariadb-admin --socket="$DB_SOCKET" ping
[ -s "$DIR/etc/db.pass" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/etc/db.pass")
DB_PASS=$(cat "$DIR/etc/db.pass")
mariadb --socket="$DB_SOCKET" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# Slurm
cat >"$CONF" <<CONF
# Written by scripts/slurm/start_local_cluster.sh: a one-node test cluster on $HOST.
ClusterName=drrdnlocal
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
KillWait=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
(umask 077; cat >"$DIR/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
)
chmod 0644 "$CONF"

slurmdbd
wait_for 30 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster drrdnlocal >/dev/null 2>&1 || true
slurmctld
wait_for 30 slurmctld bash -c "scontrol ping | grep -q 'is UP'"
slurmd
wait_for 30 "slurmd (node $HOST)" bash -c "sinfo -h -n $HOST -o %T | grep -qE '^(idle|mixed|allocated)'"
echo "local Slurm cluster up: node $HOST, $CPUS CPUs, ${MEM_MB} MB; logs in $DIR/log"
echo "export SLURM_CONF=$CONF"
