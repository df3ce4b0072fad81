#!/usr/bin/env bash
# GPU figures for the detect and train/evaluate benchmarks, in one run on a GPU machine.
# See "GPU runs" in benchmarks/README.md for the wheels a machine without PyAV, orjson or the
# COCO evaluators needs beside the repository (in .whl/).
# Each step has its own time limit, so one slow step cannot take the others' figures with it;
# every output lands in $OUT. DEVICE=cpu FRAMES=10 ITERATIONS=1 tries the script anywhere.
set -uo pipefail
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}
FRAMES=${FRAMES:-200}
ITERATIONS=${ITERATIONS:-20}
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
PY=${PY:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    $PY -c "import torch, torchvision, av, cv2, sys; print(sys.version.split()[0], 'torch',
torch.__version__, 'torchvision', torchvision.__version__, 'av', av.__version__, 'cv2',
cv2.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/machine.txt"
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee "$OUT/$name.txt"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt"
}
HALF=()
[ "$DEVICE" = cuda ] && HALF=(--half)
step detect_small_b1 60 $PY benchmarks/bench_detect.py --device "$DEVICE" --frames "$FRAMES"
step detect_small_b8 60 $PY benchmarks/bench_detect.py --device "$DEVICE" --frames "$FRAMES" \
    --batch-size 8
step detect_r50_b8 90 $PY benchmarks/bench_detect.py --device "$DEVICE" --frames "$FRAMES" \
    --batch-size 8 --model fasterrcnn_resnet50_fpn_v2
step detect_r50_b8_half 60 $PY benchmarks/bench_detect.py --device "$DEVICE" --frames "$FRAMES" \
    --batch-size 8 --model fasterrcnn_resnet50_fpn_v2 "${HALF[@]}"
step train 120 $PY benchmarks/bench_train.py --device "$DEVICE" --iterations "$ITERATIONS"
echo "outputs in $OUT"
