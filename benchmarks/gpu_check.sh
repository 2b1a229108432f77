#!/usr/bin/env bash
# The GPU checks and benchmarks in one go, for a machine with a CUDA GPU and a Python
# that has PyTorch and ganlearn's other dependencies (pyproject.toml; e.g. POT and mlxtend added as
# wheels on PYTHONPATH). No virtual environment or install needed: the package is used from src/.
#
#     OUT=/tmp/gpu BUDGET=420 bash benchmarks/gpu_check.sh
#
# 1. the GPU tests (tests/test_gpu.py: a tiny FSR run and an image-GAN step on CUDA, no host-device
#    synchronisation inside any FSR stage's step, the batched overparameterized GDA on CUDA equal
#    to the CPU) and tests/test_rng.py;
# 2. what `make bench DEVICE=cuda` measures on the GPU: the default run's wall time, ganlearn vs
#    the plain eager loop (FSR; overparameterized with R = 256 replicas), R = 1 .. 256 replicas
#    batched vs one after another (overparameterized; FSR at R = 1, 4, 16 per stage), achieved
#    FLOP/s and bytes against the measured peaks.
# PARTS="tests run ..." runs only the parts named (default: all of them, in the order below).
# Each part has a time limit, cut to what is left of BUDGET seconds, so the whole ends in time;
# everything prints to $OUT/log.txt and the results (benchmarks/results/*_cuda/, the default run's
# summary and report) are packed into $OUT/results.tar.gz.
set -u
OUT=${OUT:-runs/gpu_check}
PY=${PY:-python3}
BUDGET=${BUDGET:-420}
PARTS=${PARTS:-env tests run run_eval_cpu plain roofline replicas replicas_fsr profile image_overhead sweeps}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
deadline=$(( $(date +%s) + BUDGET ))
log="$OUT/log.txt"
: > "$log"
summary=()

part() {  # part NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    [[ " $PARTS " == *" $name "* ]] || return 0
    local left=$(( deadline - $(date +%s) ))
    (( limit > left )) && limit=$left
    if (( limit < 10 )); then
        summary+=("$name: not run (budget spent)")
        return
    fi
    echo "== $(date +%T) $name (limit ${limit} s): $*" | tee -a "$log"
    local t0=$(date +%s)
    timeout "$limit" "$@" >> "$log" 2>&1
    local rc=$?
    summary+=("$name: rc $rc, $(( $(date +%s) - t0 )) s")
    echo "== $name: rc $rc, $(( $(date +%s) - t0 )) s" | tee -a "$log"
}

part env 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv;
    $PY -c 'import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())'"
part tests 180 $PY -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py tests/test_rng.py
part run 200 $PY benchmarks/bench_run.py --device cuda --tag _cuda
# the same with the metrics computed on one CPU thread (eval.device="cpu") instead of the GPU
part run_eval_cpu 400 $PY benchmarks/bench_run.py --device cuda --tag _cuda_eval_cpu --set 'eval.device="cpu"'
part plain 150 $PY benchmarks/bench_plain.py --problem all --device cuda --R 256
part roofline 90 $PY benchmarks/bench_roofline.py --device cuda
part replicas 90 $PY benchmarks/bench_replicas.py --problem overparam --device cuda --R 1 8 64 256
# FSR replicas batched (fsr.batched) vs one after another, per SGDA stage of the default preset
part replicas_fsr 120 $PY benchmarks/bench_replicas_fsr.py --device cuda --R 1 4 16 --steps 10 --repeats 3 --seq-max 2
part profile 60 $PY benchmarks/profile_fsr_step.py --device cuda
# how much of an image-GAN step is per-operation cost (what replica batching could remove)
part image_overhead 60 $PY benchmarks/bench_image_overhead.py --device cuda --steps 10
# the default sweeps on this machine's CPU cores, one worker per core (their trainers are CPU ones)
part sweeps 150 bash -c "time $PY -m ganlearn.cli sweep width-sweep --workers $(nproc) --no-progress --out runs/gpu-sweep-width \
    && time $PY -m ganlearn.cli sweep sample-complexity --workers $(nproc) --no-progress --out runs/gpu-sweep-sc"

run_dir=$(ls -td runs/bench-* 2>/dev/null | head -1)
tar czf "$OUT/results.tar.gz" benchmarks/results/*cuda* ${run_dir:+$run_dir/summary.json $run_dir/report.md \
    $run_dir/metrics.jsonl $run_dir/baseline/metrics.jsonl} 2>> "$log"
echo
printf '%s\n' "${summary[@]}"
for f in benchmarks/results/*cuda*/result.md; do echo; cat "$f"; done
grep -h -A3 "wall_seconds\|total_wall" benchmarks/results/bench_run_cuda/result.json 2>/dev/null | head -20
grep -E "passed|failed|error" "$log" | tail -5
