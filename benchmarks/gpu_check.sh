#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one go (no machine here has one; run it where one is lent):
# the kernel parity tests and the shipped NetR through CuPy on the GPU, the kernel benchmark,
# restore derain on --device cuda against --device cpu, and last the whole suite with a GPU
# present (--device auto then picks it; SUITE_TIMEOUT seconds, default 240). Needs torch with
# CUDA, CuPy, the runtime dependencies, pytest-xdist and pytest-timeout; uses the source tree
# as is (PYTHONPATH), no install. Each pytest run has a time limit: a hang cannot eat the lease.
#   benchmarks/gpu_check.sh [FOLDER_OF_RAINY_PHOTOS]   logs go to $OUT (default gpu-check/)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}; mkdir -p "$out"
photos=${1:-}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi -L
$py -c "import torch, cupy; print('torch', torch.__version__, 'cupy', cupy.__version__, torch.cuda.get_device_name())"
echo "== kernel parity on the GPU"
timeout 180 $py -m pytest -p no:cacheprovider tests/test_kernels.py 2>&1 | tee "$out/kernels.log" | grep -E "^(FAILED|ERROR)|passed|failed" | tail -n 30
echo "== kernels vs dense on the GPU"
(cd benchmarks && $py cuda_ops.py --repeats 20 --photo ../examples/rainy.png) 2>&1 | tee "$out/cuda_ops.log"
if [ -n "$photos" ]; then
  echo "== end to end, --device cuda"
  $py benchmarks/end_to_end.py "$photos" --limit 10 --device cuda 2>&1 | tee "$out/end_to_end_cuda.log"
fi
echo "== restore derain examples/rainy.png on cuda and on cpu"
for d in cuda cpu; do $py -m restore_cli derain examples/rainy.png --device $d -o "$out/$d" --save-mask --quiet; done
$py - "$out" <<'PY'
import sys
import numpy as np
from PIL import Image
out = sys.argv[1]
a, b = (np.asarray(Image.open(f"{out}/{d}/rainy.png"), np.float64) for d in ("cuda", "cpu"))
ma, mb = (np.asarray(Image.open(f"{out}/{d}/rainy_mask.png")) > 0 for d in ("cuda", "cpu"))
mse = ((a - b) ** 2).mean()
print(f"cuda vs cpu output: max |diff| {np.abs(a - b).max():.0f} levels, PSNR {10 * np.log10(255**2 / max(mse, 1e-12)):.1f} dB; "
      f"masks agree on {(ma == mb).mean() * 100:.3f}% of pixels")
PY
echo "== whole suite, GPU present"
# -v names each test as it ends, so a run cut short by the time limit still names its failures
timeout ${SUITE_TIMEOUT:-240} $py -m pytest -p no:cacheprovider -n 16 -v --timeout 90 --durations 15 tests 2>&1 \
  | tee "$out/suite.log" | grep -E "FAILED|ERROR|passed|failed|Timeout" | tail -n 30
