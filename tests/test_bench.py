"""``restore bench``: metric conventions on hand-computed pairs, every folder layout,
skipped pairs, reports that parse, and means that match an independent recomputation."""

import csv
import json
import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from restore_cli.bench import synthetic
from restore_cli.bench.cli import CONVENTION_HELP
from restore_cli.bench.datasets import find_pairs, locate
from restore_cli.bench.protocols import CONVENTIONS
from restore_cli.bench.report import write_all
from restore_cli.bench.run import benchmark
from restore_cli.errors import RestoreError
from restore_cli.pipeline import Pipeline

from .test_synth import photo


def gray(v, h=16, w=16):
    return np.full((h, w, 3), v, np.uint8)


def save(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def u8(seed, h=24, w=24):
    return np.round(photo(seed, h, w) * 255).astype(np.uint8)


def run_bench(*args, env=None):
    """``restore bench ARGS...`` in-process, through the registered command."""
    from restore_cli.cli import app

    return CliRunner().invoke(app, ["bench", *map(str, args)], env=env)


# --- metrics against hand-computed values -----------------------------------------------------

C1 = (0.01 * 255) ** 2  # SSIM of two constant images is (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)


def const_ssim(a, b):
    return (2 * a * b + C1) / (a * a + b * b + C1)


@pytest.mark.parametrize(
    "name,psnr,ssim",
    [
        ("rgb", 20 * math.log10(255 / 10), const_ssim(100, 110)),  # every value off by 10
        ("y-opencv", 20 * math.log10(255 / 10), const_ssim(100, 110)),  # grey: Y = value
        # MATLAB Y = 16 + 219 v / 255: 101.88 vs 110.47 unrounded, 102 vs 110 rounded
        ("y-matlab", 20 * math.log10(255 / (219 * 10 / 255)), const_ssim(16 + 219 * 100 / 255, 16 + 219 * 110 / 255)),
        ("y-matlab-round", 20 * math.log10(255 / 8), const_ssim(102, 110)),
    ],
)
def test_constant_pair_known_scores(name, psnr, ssim):
    s = CONVENTIONS[name].score(gray(100), gray(110))
    assert s["psnr"] == pytest.approx(psnr, abs=1e-9)
    assert s["ssim"] == pytest.approx(ssim, abs=1e-9)


@pytest.mark.parametrize("name", ["rgb", "y-opencv", "y-matlab", "y-matlab-round"])
def test_identical_pair_is_inf_psnr_and_ssim_one(name):
    img = u8(0)
    s = CONVENTIONS[name].score(img, img.copy())
    assert s["psnr"] == math.inf and s["ssim"] == pytest.approx(1.0)


def srgb_gray_L(v):
    """CIE L* of an sRGB grey level, from the sRGB and CIELAB definitions."""
    c = v / 255
    y = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return 116 * y ** (1 / 3) - 16 if y > (6 / 29) ** 3 else y * (29 / 3) ** 3


def test_lab_error_per_region_and_pooled_over_pixels():
    conv = CONVENTIONS["lab-mae"]
    target = gray(128, 8, 8)
    errs = [srgb_gray_L(128) - srgb_gray_L(v) for v in (64, 100)]  # grey has a = b = 0
    records = []
    for rows, v in ((2, 64), (6, 100)):  # shadow: 2 rows darkened to 64, then 6 rows to 100
        mask = np.zeros((8, 8), bool)
        mask[:rows] = True
        out = target.copy()
        out[mask] = v
        records.append(conv.score(out, target, mask))
    first = records[0]
    assert first["rmse_s"] == pytest.approx(errs[0], abs=0.01)
    assert first["rmse_ns"] == pytest.approx(0.0, abs=1e-6)
    assert first["rmse"] == pytest.approx(errs[0] * 2 / 8, abs=0.01)
    mean = conv.aggregate(records, conv.metrics)  # pooled over the pixels of both images
    assert mean["rmse_s"] == pytest.approx((2 * errs[0] + 6 * errs[1]) / 8, abs=0.01)
    assert mean["rmse"] == pytest.approx((2 * errs[0] + 6 * errs[1]) / 16, abs=0.01)


# --- layouts ---------------------------------------------------------------------------------


def make_layout(root: Path, layout: str, n: int = 3) -> None:
    for i in range(1, n + 1):
        rain, clean = u8(i), u8(i + 10)
        if layout == "input-target":
            save(root / "input" / f"{i}.png", rain), save(root / "target" / f"{i}.png", clean)
        elif layout == "prenet":
            save(root / "rainy" / f"rain-{i:03d}.png", rain), save(root / f"norain-{i:03d}.png", clean)
        elif layout == "raindrop":
            save(root / "data" / f"{i}_rain.png", rain), save(root / "gt" / f"{i}_clean.png", clean)
        elif layout in ("istd", "istd-test"):
            a, b, c = ("test_A", "test_B", "test_C") if layout == "istd-test" else ("A", "B", "C")
            mask = np.zeros((24, 24), np.uint8)
            mask[4:12, 4:12] = 255
            save(root / a / f"{i}.png", rain), save(root / b / f"{i}.png", mask), save(root / c / f"{i}.png", clean)
        elif layout == "gopro":
            for seq in ("GOPR0001_11_00", "GOPR0002_11_00"):
                save(root / seq / "blur" / f"{i:06d}.png", rain), save(root / seq / "sharp" / f"{i:06d}.png", clean)


@pytest.mark.parametrize(
    "layout,names,masked",
    [
        ("input-target", ["1", "2", "3"], False),
        ("prenet", ["001", "002", "003"], False),
        ("raindrop", ["1", "2", "3"], False),
        ("istd", ["1", "2", "3"], True),
        ("istd-test", ["1", "2", "3"], True),
        ("gopro", [f"GOPR000{s}_11_00/00000{i}" for s in (1, 2) for i in (1, 2, 3)], False),
    ],
)
def test_layouts_pair_by_name(tmp_path, layout, names, masked):
    make_layout(tmp_path, layout)
    found = find_pairs(tmp_path)
    assert [p.name for p in found.pairs] == names and not found.unmatched
    assert all((p.mask is not None) == masked for p in found.pairs)
    assert all(p.input != p.target and p.input.is_file() and p.target.is_file() for p in found.pairs)


def test_layout_under_test_subfolder_and_unmatched_reported(tmp_path):
    make_layout(tmp_path / "test", "input-target")
    (tmp_path / "test" / "target" / "2.png").unlink()
    found = find_pairs(tmp_path)
    assert [p.name for p in found.pairs] == ["1", "3"]
    assert [u["name"] for u in found.unmatched] == ["2"] and "no target" in found.unmatched[0]["reason"]


def test_unknown_layout_names_folder(tmp_path):
    save(tmp_path / "x.png", u8(0))
    with pytest.raises(RestoreError, match="no image pairs in a known layout"):
        find_pairs(tmp_path)


@pytest.mark.parametrize("other_dataset", [False, True])
def test_missing_dataset_one_line_and_exit_2(tmp_path, other_dataset):
    env = {"RESTORE_HF_ENDPOINT": "http://127.0.0.1:9", "RESTORE_HF_TIMEOUT": "2"}  # nothing listens: fails fast
    if other_dataset:  # a root that holds something else: huggingface_hub warns "Returning existing local_dir"
        save(tmp_path / "Rain100L" / "input" / "1.png", u8(0))
    res = run_bench("--dataset", "Rain100H", "--model", "identity", "--root", tmp_path, "--out", tmp_path / "o", env=env)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "Rain100H") in lines[0] and "input/ + target/" in lines[0]
    with pytest.raises(RestoreError, match="unknown dataset"):
        locate("Rain999", tmp_path)


# --- the loop and the reports ----------------------------------------------------------------


@pytest.fixture
def tiny_pipeline(tiny_model):
    return Pipeline.from_model(tiny_model, "derain", device="cpu")


def test_bad_pairs_are_skipped_by_name_and_counted(tmp_path):
    make_layout(tmp_path, "input-target", n=4)
    save(tmp_path / "input" / "2.png", u8(2, 24, 20))  # size mismatch
    (tmp_path / "target" / "3.png").write_bytes(b"not a png")  # unreadable
    result = benchmark(find_pairs(tmp_path), "Rain100L", "derain", CONVENTIONS["y-matlab"], None, log=lambda s: None)
    assert [r["name"] for r in result.images] == ["1", "4"]
    reasons = {s["name"]: s["reason"] for s in result.skipped}
    assert set(reasons) == {"2", "3"} and "20x24" in reasons["2"] and "3.png" in reasons["3"]
    report = json.loads((write_all(result, tmp_path / "out")["json"]).read_text())
    assert [s["name"] for s in report["skipped"]] == ["2", "3"] and report["count"] == 2
    assert "2: " in (tmp_path / "out" / "report.md").read_text()


def test_means_match_independent_recomputation_from_saved_outputs(tmp_path, tiny_pipeline):
    make_layout(tmp_path / "data", "input-target", n=4)
    conv = CONVENTIONS["y-matlab-round"]
    result = benchmark(find_pairs(tmp_path / "data"), "Rain100H", "derain", conv, tiny_pipeline, tmp_path / "out")
    write_all(result, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    psnrs, ssims = [], []
    for target in sorted((tmp_path / "data" / "target").glob("*.png")):
        out = np.asarray(Image.open(tmp_path / "out" / "outputs" / target.name))
        y_out, y_tgt = (np.round(rgb2ycbcr(x)[..., 0]) for x in (out, np.asarray(Image.open(target))))
        psnrs.append(peak_signal_noise_ratio(y_tgt, y_out, data_range=255))
        ssims.append(structural_similarity(y_tgt, y_out, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=255))
    assert report["mean"]["psnr"] == pytest.approx(np.mean(psnrs), abs=0.05)
    assert report["mean"]["ssim"] == pytest.approx(np.mean(ssims), abs=0.002)
    assert report["images"][0]["seconds"] > 0 and 0 <= report["images"][0]["mask_density"] <= 1


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_reports_parse_and_html_has_gallery_and_plot(tmp_path, tiny_pipeline):
    make_layout(tmp_path / "data", "input-target", n=12)
    result = benchmark(find_pairs(tmp_path / "data"), "Rain100H", "derain", CONVENTIONS["y-matlab-round"], tiny_pipeline)
    paths = write_all(result, tmp_path / "out")
    report = json.loads(paths["json"].read_text())
    assert {"dataset", "task", "weights_id", "sha256", "convention", "mean", "images", "skipped", "timing"} <= set(report)
    assert {"median_seconds", "images_per_second", "peak_memory_mb"} <= set(report["timing"])
    assert report["convention"]["name"] == "y-matlab-round"
    assert len(list(csv.DictReader(paths["csv"].open()))) == 12
    md = paths["md"].read_text()
    assert "30.95" in md and "SPAIR Table 1" in md and "input (identity)" in md and "y-matlab-round" in md

    page = paths["html"].read_text()
    parser = _Tags()
    parser.feed(page)
    imgs = [a["src"] for t, a in parser.tags if t == "img"]
    assert len(imgs) == 4 * 10 and all(s.startswith("data:image/jpeg;base64,") for s in imgs)  # 5 worst + 5 best
    svg = ET.fromstring(page[page.index("<svg") : page.index("</svg>") + 6])
    circles = svg.findall("{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 12
    worst = min(result.images, key=lambda r: r["psnr"])["name"]
    assert page.index("5 worst") < page.index(f"input of {worst}") < page.index("5 best")


def test_lab_convention_on_istd_layout(tmp_path):
    make_layout(tmp_path / "ISTD", "istd")
    result = benchmark(find_pairs(tmp_path / "ISTD"), "ISTD", "deshadow", CONVENTIONS["lab-mae"], None)
    mean = result.mean()
    assert set(mean) == {"rmse_s", "rmse_ns", "rmse"} and all(v > 0 for v in mean.values())
    write_all(result, tmp_path / "out")
    assert "32.12" in (tmp_path / "out" / "report.md").read_text()  # SPAIR Table 4's input row


# --- the command -----------------------------------------------------------------------------


def test_synthetic_set_is_deterministic(tmp_path):
    src = save(tmp_path / "clean.png", u8(5, 40, 48))
    a, b = synthetic.build(tmp_path / "a", src, side=32), synthetic.build(tmp_path / "b", src, side=32)
    names = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(names) == 2 * synthetic.COUNT
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert any(not np.array_equal(*(np.asarray(Image.open(a / d / n.name)) for d in ("input", "target")))
               for n in names)


def test_cli_synthetic_identity_offline(tmp_path):
    assert synthetic.EXAMPLE.is_file(), "examples/clean.png is the bundled source of synthetic-rain"
    res = run_bench("--dataset", "synthetic-rain", "--model", "identity", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["count"] == synthetic.COUNT and report["model"] == "identity"
    assert report["mean"] == report["input_mean"] and 10 < report["mean"]["psnr"] < 40
    assert "synthetic-rain" in res.stdout and (tmp_path / "report.html").is_file()


def test_cli_weights_file_scores_that_checkpoint(tmp_path, tiny_weights):
    weights = tiny_weights
    make_layout(tmp_path / "data" / "Rain100L", "prenet", n=2)
    res = run_bench("--dataset", "Rain100L", "--weights", weights, "--root", tmp_path / "data", "--device", "cpu",
              "--precision", "fp32", "--out", tmp_path / "out", "--save-outputs")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["weights_id"] == str(weights) and len(report["sha256"]) == 64
    assert report["device"] == "cpu (fp32)"
    assert sorted(p.name for p in (tmp_path / "out" / "outputs").iterdir()) == ["001.png", "002.png"]


def test_cli_tta_is_named_in_the_report_and_needs_a_model(tmp_path, tiny_weights):
    make_layout(tmp_path / "data" / "Rain100L", "prenet", n=1)
    res = run_bench("--dataset", "Rain100L", "--weights", tiny_weights, "--root", tmp_path / "data", "--device", "cpu",
                    "--precision", "fp32", "--out", tmp_path / "out", "--tta")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["device"] == "cpu (fp32, tta)"
    res = run_bench("--dataset", "Rain100L", "--model", "identity", "--root", tmp_path / "data", "--tta",
                    "--out", tmp_path / "id")
    assert res.exit_code == 2 and "--tta" in res.stderr


def test_cli_weights_error_is_one_line_exit_2(tmp_path):
    make_layout(tmp_path / "Rain100L", "input-target", n=1)
    res = run_bench("--dataset", "Rain100L", "--weights", tmp_path / "missing.safetensors", "--root", tmp_path,
              "--out", tmp_path / "out")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "missing.safetensors" in res.stderr


def test_help_names_every_convention():
    assert all(name in CONVENTION_HELP for name in CONVENTIONS)
