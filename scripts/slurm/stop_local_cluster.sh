#!/usr/bin/env bash
# Stop the cluster that start_local_cluster.sh started (each daemon by its pid file);
# --purge also deletes its folder ($DRRDN_SLURM_DIR, default /var/tmp/drrdn-slurm).
set -uo pipefail

DIR=${DRRDN_SLURM_DIR:-/var/tmp/drrdn-slurm}
export SLURM_CONF=$DIR/etc/slurm.conf

stop_pid_file() {  # stop_pid_file NAME FILE: SIGTERM the pid in FILE, wait up to 20 s
    local name=$1 file=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { echo "stopped $name ($pid)"; return 0; }; sleep 0.2; done
    echo "stop_local_cluster: $name ($pid) still running after 20 s" >&2
}

[ -f "$SLURM_CONF" ] && scancel --full --quiet --user=root 2>/dev/null
stop_pid_file slurmd "$DIR/run/slurmd.pid"
stop_pid_file slurmctld "$DIR/run/slurmctld.pid"
stop_pid_file slurmdbd "$DIR/run/slurmdbd.pid"
stop_pid_file mariadbd "$DIR/mysql/mariadbd.pid"
stop_pid_file munged "$DIR/munge/munged.pid"
if [ "${1:-}" = "--purge" ]; then
    rm -rf "$DIR" && echo "removed $DIR"
fi
