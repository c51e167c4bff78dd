"""HTML pieces of the report: inline JPEG thumbnails and an inline SVG scatter plot."""

from __future__ import annotations

import base64
import math
from html import escape
from io import BytesIO

import numpy as np
from PIL import Image

THUMB_SIDE = 160
VIEWS = ("input", "mask", "output", "target")


def thumbnail(img: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    """JPEG bytes of a uint8 RGB image or a bool mask, at most ``side`` px on its long side."""
    im = Image.fromarray(img.astype(np.uint8) * 255 if img.dtype == bool else img)
    im.thumbnail((side, side))
    buf = BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _img(jpeg: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}">'


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def gallery(images: list[dict], thumbs: dict[str, dict[str, bytes]], key: str, higher_is_better: bool,
            fmt, n: int = 5) -> str:
    """The ``n`` worst and ``n`` best images by ``key`` (all of them, worst first, if few)."""
    order = sorted((r for r in images if r[key] is not None), key=lambda r: r[key], reverse=not higher_is_better)
    if len(order) <= 2 * n:
        sections = [("All images, worst first", order)]
    else:
        sections = [(f"{n} worst", order[:n]), (f"{n} best", order[::-1][:n])]
    parts = []
    for title, rows in sections:
        parts.append(f'<h2>{escape(title)}</h2>\n<table class="gallery">\n<tr><th>image</th>'
                     + "".join(f"<th>{v}</th>" for v in VIEWS) + "</tr>")
        for r in rows:
            cells = "".join(f"<td>{_img(thumbs[r['name']][v], f'{v} of ' + r['name'])}</td>" for v in VIEWS)
            score = f"{key} {fmt(key, r[key])} (input {fmt(key, r['input_' + key])})"
            parts.append(f"<tr><td>{escape(r['name'])}<br>{score}</td>{cells}</tr>")
        parts.append("</table>")
    return "\n".join(parts)


def scatter_svg(points: list[tuple[float, float, str]], xlabel: str, ylabel: str,
                width: int = 520, height: int = 320) -> str:
    """An inline SVG scatter plot of (x in [0, 1], y, label) points; non-finite y are left out."""
    pts = [(x, y, name) for x, y, name in points if _finite(y)]
    left, right, top, bottom = 56, 16, 16, 44
    pw, ph = width - left - right, height - top - bottom
    lo, hi = (min(y for _, y, _ in pts), max(y for _, y, _ in pts)) if pts else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad

    def sx(x: float) -> float:
        return left + x * pw

    def sy(y: float) -> float:
        return top + (hi - y) / (hi - lo) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="plot">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in np.linspace(0, 1, 5):
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11">{t:.2f}</text>')
    for t in np.linspace(lo, hi, 5):
        out.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{t:.2f}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="12">{escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 14 {top + ph / 2})">{escape(ylabel)}</text>')
    for x, y, name in pts:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="#2b6cb0" fill-opacity="0.7">'
                   f"<title>{escape(name)}: {y:.3f} at {x:.3f}</title></circle>")
    out.append("</svg>")
    left_out = len(points) - len(pts)
    note = f"<p>{left_out} image(s) with an infinite or undefined score are not plotted.</p>" if left_out else ""
    return "\n".join(out) + note
