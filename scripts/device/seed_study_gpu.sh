#!/usr/bin/env bash
# The seed study's robust runs on one lent GPU (the device tool), in parallel processes.
#
# On this CPU machine, once: the data and the one pure-Python package the device lacks
# travel in data/device/ (ignored by git, so it must be carried):
#   bash scripts/device/seed_study_gpu.sh prepare
# Then two device calls, the second at once after the first (the machine stays warm 30 s;
# the trainings started by the first run on in their own session meanwhile):
#   run(command="bash scripts/device/seed_study_gpu.sh start-and-pack", carry=["data/device"], timeout_s=590)
#   run(command="bash scripts/device/seed_study_gpu.sh pack", carry=["data/device"], timeout_s=590)
# Each call packs the finished run folders not packed before into $OUT within the tool's
# limits (scripts/device/pack_runs.py: 8 files of 16 MiB, 64 MiB in all; a DRRDN run is
# 15.4 MiB, so about four per call), plus the logs and the GPU's name.
# Back here: tar -xf each into results/runs/mnist/ and add each run to the zoo
# (scripts/add_to_zoo.py ... --eval-limit 1000), evaluation on this CPU.
#
# Float32 means float32 there too: drrdn_lib turns TF32 off on CUDA (torch_utils.no_tf32).
# A dry run of the logic on the CPU: DEVICE=cpu MAIN=<small.yaml> ABLATION=<small.yaml> OUT=/tmp/o ...
set -uo pipefail
cd "$(dirname "$0")/../.."
DEVICE="${DEVICE:-cuda}"
MAIN="${MAIN:-notebooks/params/02_main_results/seeds.yaml}"
ABLATION="${ABLATION:-notebooks/params/03_ablation/seeds.yaml}"
CONTROL="${CONTROL:-notebooks/params/03_ablation/control.yaml}"
WAIT_S="${WAIT_S:-540}"  # seconds a call waits for trainings before packing
LOGS=results/logs/device
export DRRDN_DATA="${DRRDN_DATA:-$PWD/data/device}" PYTHONPATH="$PWD:$PWD/data/device/pylib"
PY="${PY:-python3}"

prepare() {
    mkdir -p data/device/pylib
    cp "${SHARED_DATA:-../shared/data}/mnist.npz" data/device/
    cp -r "$(.venv/bin/python -c 'import pyautoattack, os; print(os.path.dirname(pyautoattack.__file__))')" \
        data/device/pylib/
    du -sh data/device
}

start() {  # every remaining robust run of the study, one process each, in their own session
    mkdir -p "$LOGS"
    nvidia-smi -L > "$LOGS/gpu.txt" 2>&1 || echo "no nvidia-smi ($DEVICE)" > "$LOGS/gpu.txt"
    local jobs=("$MAIN --methods pgd_at --seeds 1" "$MAIN --methods pgd_at --seeds 2"
                "$MAIN --methods trades --seeds 0" "$MAIN --methods trades --seeds 1"
                "$MAIN --methods trades --seeds 2" "$MAIN --methods drrdn --seeds 0"
                "$MAIN --methods drrdn --seeds 1" "$MAIN --methods drrdn --seeds 2")
    local i=0
    for job in "${jobs[@]}"; do
        setsid nohup $PY scripts/train_main_runs.py $job --device "$DEVICE" --threads 1 \
            > "$LOGS/main_$i.log" 2>&1 < /dev/null &
        i=$((i + 1))
    done
    for seed in 0 1 2; do
        setsid nohup $PY scripts/train_ablation_runs.py "$ABLATION" --variants "without reconstruction" \
            --seeds "$seed" --device "$DEVICE" --threads 1 > "$LOGS/no_rec_$seed.log" 2>&1 < /dev/null &
    done
    setsid nohup $PY scripts/train_ablation_runs.py "$CONTROL" --device "$DEVICE" --threads 1 \
        > "$LOGS/control.log" 2>&1 < /dev/null &
    date +%s > "$LOGS/started"
}

pack() {  # the finished runs not packed by an earlier call -> $OUT, with the logs
    $PY scripts/device/pack_runs.py "$OUT" --runs results/runs --ledger "$LOGS/packed.txt"
    tar -czf "$OUT/logs.tar.gz" "$LOGS"
    ls -la "$OUT"
}

wait_for_all() {  # until every training process has ended or this call has waited WAIT_S s
    local deadline=$(( $(date +%s) + WAIT_S ))
    while pgrep -f "scripts/train_(main|ablation)_runs.py" > /dev/null; do
        [ "$(date +%s)" -ge "$deadline" ] && break
        sleep 5
    done
    echo "$(( $(date +%s) - $(cat "$LOGS/started") )) s since the trainings started"
    tail -n 2 "$LOGS"/*.log
}

case "${1:-}" in
    prepare) prepare ;;
    start-and-pack) start; wait_for_all; pack ;;
    pack) wait_for_all; pack ;;
    *) echo "usage: $0 prepare | start-and-pack | pack" >&2; exit 2 ;;
esac
