"""Write a benchmark ``Result`` as report.json, report.csv, report.md and report.html."""

from __future__ import annotations

import csv
import json
import math
from html import escape
from pathlib import Path

from .gallery import gallery, scatter_svg
from .published import PUBLISHED
from .run import Result

LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "rmse_s": "RMSE shadow", "rmse_ns": "RMSE non-shadow", "rmse": "RMSE all"}


def fmt(metric: str, v) -> str:
    """A score for tables; published values are strings and are shown as printed."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if metric == "ssim" else f"{v:.2f}"


def _json_safe(obj):
    """JSON has no Infinity/NaN: write them as the strings "inf", "-inf", "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def to_dict(r: Result) -> dict:
    return _json_safe({
        "dataset": r.dataset,
        "task": r.task,
        "layout": r.layout,
        "model": r.model,
        "weights_id": r.weights_id,
        "sha256": r.sha256,
        "device": r.device,
        "convention": {"name": r.convention.name, "source": r.convention.source},
        "mask_source": r.mask_source,
        "count": len(r.images),
        "mean": r.mean(),
        "input_mean": r.mean("input_"),
        "images": r.images,
        "skipped": r.skipped,
        "timing": r.timing,
    })


def summary_rows(r: Result) -> list[tuple[str, dict, str]]:
    """(method, scores, source): this run, the input itself, then the published numbers."""
    ours = [("input (identity)", r.mean("input_"), f"this run, {r.convention.name}")]
    if r.model != "identity":
        ours.insert(0, (f"restore SPAIR ({r.weights_id})", r.mean(), f"this run, {r.convention.name}"))
    return ours + PUBLISHED.get(r.dataset, [])


def _header_lines(r: Result) -> list[str]:
    t = r.timing
    ips = f"{t['images_per_second']:.2f} images/s" if t.get("images_per_second") else "n/a images/s"
    median = f"{t['median_seconds']:.3f} s/image" if t.get("median_seconds") is not None else "n/a"
    return [
        f"task {r.task}; model {r.model}; weights {r.weights_id} (sha256 {r.sha256[:12] or '-'}); device {r.device}",
        f"{len(r.images)} pairs scored, {len(r.skipped)} skipped; layout {r.layout}",
        f"convention {r.convention.name}: {r.convention.source}",
        f"timing: median {median}, {ips}, peak memory {t['peak_memory_mb']} MB ({t['memory_measure']})",
        f"mask density: {r.mask_source}",
    ]


def write_json(r: Result, path: Path) -> None:
    path.write_text(json.dumps(to_dict(r), indent=2, allow_nan=False) + "\n")


def write_csv(r: Result, path: Path) -> None:
    fields = list(r.images[0]) if r.images else ["name", *r.convention.metrics, "seconds", "mask_density"]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(r.images)


def write_md(r: Result, path: Path) -> None:
    metrics = r.convention.metrics
    lines = [f"# restore bench: {r.dataset}", ""] + [f"- {s}" for s in _header_lines(r)] + [""]
    lines += ["| method | " + " | ".join(LABELS[m] for m in metrics) + " | source |",
              "|---|" + "---:|" * len(metrics) + "---|"]
    for method, scores, source in summary_rows(r):
        lines.append(f"| {method} | " + " | ".join(fmt(m, scores.get(m)) for m in metrics) + f" | {source} |")
    lines += ["", "Published numbers come from their authors' own evaluation scripts; see the convention above."]
    if r.skipped:
        lines += ["", "## Skipped", ""] + [f"- {s['name']}: {s['reason']}" for s in r.skipped]
    path.write_text("\n".join(lines) + "\n")


STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:4px 8px}.gallery img{display:block;max-width:160px}")


def write_html(r: Result, path: Path) -> None:
    metrics, key = r.convention.metrics, r.convention.rank_by
    head = "".join(f"<th>{LABELS[m]}</th>" for m in metrics)
    rows = "".join(
        f"<tr><td>{escape(method)}</td>" + "".join(f"<td>{fmt(m, s.get(m))}</td>" for m in metrics)
        + f"<td>{escape(source)}</td></tr>"
        for method, s, source in summary_rows(r)
    )
    points = [(i["mask_density"], i[key], i["name"]) for i in r.images]
    skipped = "".join(f"<li>{escape(s['name'])}: {escape(s['reason'])}</li>" for s in r.skipped)
    body = [
        f"<h1>restore bench: {escape(r.dataset)}</h1>",
        "<ul>" + "".join(f"<li>{escape(s)}</li>" for s in _header_lines(r)) + "</ul>",
        f"<table class=\"summary\"><tr><th>method</th>{head}<th>source</th></tr>{rows}</table>",
        f"<h2>{LABELS[key]} against mask density</h2>",
        scatter_svg(points, f"mask density ({r.mask_source})", LABELS[key]),
        gallery(r.images, r.thumbs, key, r.convention.higher_is_better, fmt),
        f"<h2>Skipped</h2><ul>{skipped}</ul>" if skipped else "",
    ]
    path.write_text(f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>restore bench: {escape(r.dataset)}"
                    f"</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_all(r: Result, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"report.{ext}" for ext in ("json", "csv", "md", "html")}
    for ext, write in (("json", write_json), ("csv", write_csv), ("md", write_md), ("html", write_html)):
        write(r, paths[ext])
    return paths
