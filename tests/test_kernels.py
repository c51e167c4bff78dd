"""The CUDA kernels in kernels/: they compile without spills, and, run on the CPU
through the host shim with the very host code of ops/cuda.py, match ops.reference.
Where a CUDA device and CuPy are present, the parity tests run on the GPU too."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from restore_cli.errors import RestoreError
from restore_cli.ops import cuda, reference

KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"
SOURCES = sorted(KERNEL_DIR.glob("*.cu"))
ON_GPU = torch.cuda.is_available() and cuda.available()  # a CUDA device, and CuPy to launch the kernels


def _load_host_shim():
    spec = importlib.util.spec_from_file_location("host_shim", KERNEL_DIR / "host_shim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


host_shim = _load_host_shim()


class OnGPU:
    """``KernelOps`` through CuPy on the GPU, called with CPU tensors like the host shim's:
    the inputs go to the GPU, the results come back."""

    def __init__(self, ops: cuda.KernelOps):
        self.ops = ops

    def __getattr__(self, name):
        def call(*args):
            out = getattr(self.ops, name)(*(a.cuda() if isinstance(a, torch.Tensor) else a for a in args))
            return tuple(t.cpu() for t in out) if isinstance(out, tuple) else out.cpu()

        return call


# Where there is no GPU, the parity tests run once (host shim) instead of reporting
# a skip per GPU case; the GPU model test's skip below records that they did not run there.
@pytest.fixture(scope="session", params=["host-shim", "gpu"] if ON_GPU else ["host-shim"])
def kernels(request, tmp_path_factory) -> cuda.KernelOps:
    """The kernels built for the CPU with g++ (once per session), and, where there is a
    CUDA device and CuPy, the same sources compiled by CuPy and run on the GPU."""
    if request.param == "gpu":
        torch.backends.cuda.matmul.allow_tf32 = False  # the GEMM in full float32, as the reference
        return OnGPU(cuda.kernel_ops())
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH: cannot build the host shim")
    return cuda.KernelOps(host_shim.build(tmp_path_factory.mktemp("shim")))


# ---------------------------------------------------------------- compilation


def test_every_source_defines_kernels():
    assert {s.stem for s in SOURCES} == {"sparse_conv", "masked_stats", "directional_attention"}
    for source in SOURCES:
        assert host_shim.kernel_names(source), source


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_nvcc_compiles_without_spills(source, tmp_path):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not on PATH: the CUDA sources were not compiled")
    base = ["nvcc", "-arch=sm_80", "-std=c++17"]
    subprocess.run(base + ["-ptx", str(source), "-o", str(tmp_path / "k.ptx")], check=True)
    done = subprocess.run(
        base + ["-cubin", "-Xptxas", "-v", str(source), "-o", str(tmp_path / "k.cubin")],
        check=True, capture_output=True, text=True,
    )
    log = done.stdout + done.stderr
    entries = re.findall(r"Compiling entry function '(\w+)'", log)
    assert sorted(entries) == sorted(host_shim.kernel_names(source))
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert len(spills) == len(entries) and all(s == ("0", "0") for s in spills), log


# ---------------------------------------------------------------- parity

# (batch, channels, height, width): odd sizes, single row / column / pixel
SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 4, 1, 9), (3, 2, 9, 1), (2, 5, 8, 6)]
DENSITIES = [0.0, 0.3, 0.7, 1.0]  # empty, sparse, dense, full


def case(shape, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    x = torch.randn(b, c, h, w, generator=g)
    mask = (torch.rand(b, 1, h, w, generator=g) < density).float()
    return x, mask


def close(got, want):
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_active_index_is_raster_order(kernels, shape, density):
    _, mask = case(shape, density)
    index = kernels.active_index(mask)
    assert index.dtype == torch.int32
    assert torch.equal(index.long(), mask.flatten().nonzero().squeeze(1))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_masked_conv2d(kernels, shape, density, k):
    x, mask = case(shape, density)
    c = shape[1]
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(4, c, k, k, generator=g) / (c * k * k) ** 0.5
    bias = torch.randn(4, generator=g)
    close(kernels.masked_conv2d(x, mask, weight, bias), reference.masked_conv2d(x, mask, weight, bias))
    close(kernels.masked_conv2d(x, mask, weight), reference.masked_conv2d(x, mask, weight))


def test_masked_conv2d_shares_the_index(kernels):
    x, mask = case((2, 6, 10, 11), 0.4)
    index = kernels.active_index(mask)
    for k in (3, 1):
        weight = torch.randn(5, 6, k, k) / 6
        close(kernels.masked_conv2d(x, mask, weight, None, index), reference.masked_conv2d(x, mask, weight))


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 40, 37)])  # 1480 pixels: two partial sums
def test_masked_mean_std(kernels, shape, density):
    x, mask = case(shape, density)
    x = x + 3.0  # a mean far from 0: the variance pass must centre
    for m in (mask, 1 - mask):
        for got, want in zip(kernels.masked_mean_std(x, m), reference.masked_mean_std(x, m)):
            close(got, want)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_directional_attention(kernels, shape, density):
    x, mask = case(shape, density)
    close(kernels.directional_attention(x, mask), reference.directional_attention(x, mask))


def test_snl_aggregate_from_the_kernels_attention(kernels):
    """What ``ops.snl_aggregate`` does on CUDA: the reference aggregation over the kernels' attention."""
    x, mask = case((2, 6, 10, 11), 0.4)
    weights = torch.softmax(torch.randn(2, 4, 10, 11, generator=torch.Generator().manual_seed(4)), dim=1)
    want = reference.snl_aggregate(x, mask, weights)
    close(reference.snl_aggregate(x, mask, weights, attention=kernels.directional_attention), want)


def test_non_binary_mask_weights_like_the_reference(kernels):
    x, mask = case((2, 3, 6, 7), 0.6)
    mask = mask * torch.rand(mask.shape, generator=torch.Generator().manual_seed(2))
    weight = torch.randn(2, 3, 3, 3) / 5
    close(kernels.masked_conv2d(x, mask, weight), reference.masked_conv2d(x, mask, weight))
    for got, want in zip(kernels.masked_mean_std(x, mask), reference.masked_mean_std(x, mask)):
        close(got, want)
    close(kernels.directional_attention(x, mask), reference.directional_attention(x, mask))


def test_kernels_take_float32_only(kernels):
    x, mask = case((1, 2, 4, 4), 0.5)
    with pytest.raises(TypeError, match="float32"):
        kernels.masked_mean_std(x.double(), mask.double())


# ---------------------------------------------------------------- CuPy loading


def test_missing_cupy_is_a_one_line_restore_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(RestoreError, match=r"restore-cli\[cuda\]"):
        cuda.CupyLauncher()


def test_cuda_module_imports_cupy_lazily():
    code = "import sys, restore_cli.ops.cuda as c; assert 'cupy' not in sys.modules; print(c.available())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("True", "False")


# ---------------------------------------------------------------- the model on the GPU


@pytest.mark.skipif(not ON_GPU, reason="no CUDA device with CuPy: the kernels ran on the CPU through the host shim only")
def test_shipped_netr_on_the_gpu_matches_the_cpu_fast_path():
    """The shipped derain NetR on a real rainy crop: with the kernels on the GPU (what
    ``--device cuda`` runs) it gives the CPU fast path's output, for the same mask."""
    import copy

    from restore_cli.imageio import read_image
    from restore_cli.models import load_spair
    from restore_cli.ops import dispatch
    from restore_cli.weights import get_record

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    model = load_spair(get_record("derain").bundled_path)
    rgb = read_image(Path(__file__).resolve().parents[1] / "examples" / "rainy.png").rgb[:96, :128]
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]
    with torch.inference_mode():
        logits, feats = model.netl(x)
        mask = (logits > 0).float()
        want = model.netr(x, mask, feats)
        gpu = copy.deepcopy(model).cuda()
        assert dispatch._backend(x.cuda()) == "kernels"
        got = gpu.netr(x.cuda(), mask.cuda(), [f.cuda() for f in feats]).cpu()
    assert 0.02 < float(mask.mean()) < 0.98  # a real, partial mask
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_cupy_launcher_hands_weights_that_require_grad(monkeypatch):
    """A module's weights require grad even under inference_mode, and DLPack refuses to
    export such tensors: the launcher must detach them (the first GPU run failed here).
    Checked without a GPU: a stand-in CuPy that exports through DLPack as CuPy does."""
    import types
    from contextlib import nullcontext

    launched = []
    fake = types.SimpleNamespace(
        from_dlpack=lambda t: torch.from_dlpack(t),  # torch's __dlpack__ raises on requires_grad
        int32=int, float32=float,
        RawModule=lambda code: types.SimpleNamespace(
            get_function=lambda name: lambda grid, block, args: launched.append((name, grid, block, args))),
        cuda=types.SimpleNamespace(Device=lambda index: nullcontext(), ExternalStream=lambda ptr, dev: nullcontext()),
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: types.SimpleNamespace(cuda_stream=0))
    weight = torch.nn.Parameter(torch.ones(3))
    with torch.inference_mode():
        cuda.CupyLauncher()("sparse_conv", "scatter_rows", 2, 256, [weight, 7, 0.5])
    (name, grid, block, args), = launched
    assert (name, grid, block) == ("scatter_rows", (2,), (256,)) and args[1:] == (7, 0.5)
    assert torch.equal(args[0], weight.detach()) and not args[0].requires_grad
