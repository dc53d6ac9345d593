#!/bin/bash
# The GPU checks of issue 16 as one script, for a lent GPU machine (benchmarks/RESULTS.md, "GPU").
#   bash benchmarks/gpu_check.sh OUTDIR
# Expects python3 with CuPy, h5py, scipy, PyYAML and tqdm; wheels of what it lacks
# (pydantic and its needs) in .whl/ are installed to /tmp/site first. Writes at most 8
# files to OUTDIR (the device tool brings back no more): gpu_check.log (everything
# printed), the JSON of two bench_engines --gpu runs and of two profiles (fused and
# flat-index views), and PyTorch's kernel tables. Prints the summaries last.
set -o pipefail
OUTDIR=${1:-benchmarks/results}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu_check.log"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=$PWD:/tmp/site
else
    export PYTHONPATH=$PWD
fi
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv
    python3 -c "import cupy, numpy, scipy; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
} 2>&1 | tee "$LOG"
timeout "${PYTEST_TIMEOUT:-240}" python3 -m pytest -m gpu -q -p no:cacheprovider --timeout 120 \
    2>&1 | tee -a "$LOG" | tail -25
for run in 1 2; do
    timeout 200 python3 benchmarks/bench_engines.py --gpu --json "$OUTDIR/bench_gpu_$run.json" \
        2>&1 | tee -a "$LOG" | tail -6
done
timeout 200 python3 benchmarks/profile_gpu.py --json "$OUTDIR/profile_gpu.json" 2>&1 | tee -a "$LOG"
timeout 120 python3 benchmarks/profile_gpu.py --views index --engines DM \
    --json "$OUTDIR/profile_gpu_index.json" 2>&1 | tee -a "$LOG" | tail -16
