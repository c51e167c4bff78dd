"""Which images a batch reads, and where each one's outputs go.

Every input argument is a file, a folder (searched recursively) or a glob
pattern (expanded here too, for shells that leave it alone). Each image gets a
*relative name*: its path below the folder (below the folder's parent when
several folders are given, so that each keeps its name), or below the glob's
literal prefix (``photos/*/x.jpg`` -> ``sub/x.jpg``), or just its file name
for a file. Its
outputs go to ``OUT/<relative name>``, so a folder's layout is mirrored under
``OUT``; relative names are sanitised so that no output can land outside it.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath
from typing import Callable, Iterable

from PIL import Image as PILImage

from .imageio import READ_FORMATS, is_supported_output_ext


@dataclass(frozen=True)
class Source:
    """An image to read and its sanitised name relative to the output folder."""

    path: Path
    rel: PurePath


@dataclass
class Job:
    """One input and every file it will write (``outputs[0]`` is the main one).

    ``error`` is set when planning already knows the job cannot run (e.g. two
    inputs would write the same output); the batch reports it as a failure.
    """

    src: Path
    outputs: list[Path]
    error: str | None = None


def safe_relpath(rel: str | PurePath) -> PurePath:
    """``rel`` without root, drive, ``.`` or ``..`` parts: it stays below any folder it is joined to."""
    p = PurePath(rel)
    parts = [part for part in (p.parts[1:] if p.anchor else p.parts) if part not in (".", "..")]
    if not parts:
        raise ValueError(f"{rel}: no file name left after sanitising")
    return PurePath(*parts)


@cache
def readable_exts() -> frozenset[str]:
    """File extensions Pillow registers for the formats ``read_image`` accepts."""
    return frozenset(ext for ext, fmt in PILImage.registered_extensions().items() if fmt in READ_FORMATS)


def is_image_name(path: str | PurePath) -> bool:
    """A name worth reading when scanning folders: an image extension, not hidden."""
    p = PurePath(path)
    return not p.name.startswith(".") and p.suffix.lower() in readable_exts()


def _walk(folder: Path, exclude: Path | None) -> Iterable[Path]:
    """Image files under ``folder`` in sorted order; skips hidden entries, ``exclude`` and symlinked folders."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (exclude is None or Path(root, d).resolve() != exclude))
        yield from (Path(root, f) for f in sorted(files) if is_image_name(f))


def _literal_prefix(pattern: str) -> str:
    """The leading path components of a glob pattern that hold no wildcard."""
    parts = PurePath(pattern).parts
    literal = []
    for part in parts:
        if glob.escape(part) != part:
            break
        literal.append(part)
    return str(PurePath(*literal)) if literal else ""


def _expand(arg: str, exclude: Path | None) -> list[Source]:
    """The sources one argument names; empty when it names nothing."""
    path = Path(arg)
    if path.is_dir():
        return [Source(p, safe_relpath(p.relative_to(path))) for p in _walk(path, exclude)]
    if path.exists():
        return [Source(path, safe_relpath(path.name))]
    if glob.escape(arg) == arg:  # not a pattern
        return []
    base = _literal_prefix(arg)
    sources = []
    for match in sorted(glob.glob(arg, recursive=True)):
        m = Path(match)
        rel = os.path.relpath(match, base) if base else match
        if m.is_dir():
            sources += [Source(p, safe_relpath(PurePath(rel, p.relative_to(m)))) for p in _walk(m, exclude)]
        elif m.exists():
            sources.append(Source(m, safe_relpath(rel)))
    return sources


def collect(args: Iterable[str], exclude: Path | None = None) -> tuple[list[Source], list[tuple[str, str]]]:
    """Sources for all arguments, and ``(argument, reason)`` for each that names no image.

    With two or more folders holding images, each folder's images are named
    below its own name, so that ``a/x.jpg`` and ``b/x.jpg`` do not clash.
    ``exclude`` (the output folder) is never searched, so earlier outputs are not
    picked up again as inputs. The same file reached twice under the same
    relative name (a folder and a file inside it) is kept once.
    """
    exclude = exclude.resolve() if exclude is not None else None
    expanded = [(arg, _expand(arg, exclude)) for arg in args]
    folders = {arg for arg, found in expanded if found and Path(arg).is_dir()}
    sources: list[Source] = []
    seen: set[tuple[Path, PurePath]] = set()
    problems = []
    for arg, found in expanded:
        if len(folders) > 1 and arg in folders:  # `a/ b/ -o out`: out/a/..., out/b/...
            found = [Source(s.path, Path(arg).resolve().name / s.rel) for s in found]
        if not found:
            what = "no images found" if Path(arg).is_dir() else "no such file, folder or match"
            problems.append((arg, what))
        for s in found:
            key = (s.path.resolve(), s.rel)
            if key not in seen:
                seen.add(key)
                sources.append(s)
    return sources, problems


def output_name(rel: PurePath, suffix: str = "", ext: str | None = None) -> PurePath:
    """``rel`` with ``suffix`` after its stem and extension ``ext`` (default: its own, or .png if unwritable)."""
    if ext is None:
        ext = rel.suffix if is_supported_output_ext(rel.suffix) else ".png"
    return rel.with_name(rel.stem + suffix + ext)


def sidecar_name(name: PurePath, kind: str) -> PurePath:
    """``NAME_<kind>.png`` beside ``name`` (``kind`` is ``mask`` or ``overlay``)."""
    return name.with_name(f"{name.stem}_{kind}.png")


def plan(sources: list[Source], out_dir: Path, outputs: Callable[[PurePath], list[PurePath]]) -> list[Job]:
    """One job per source, its outputs ``out_dir / name`` for each name ``outputs(rel)`` gives.

    A job is marked failed (not run) when one of its outputs is already an
    output of an earlier job (compared case-insensitively, as on macOS and
    Windows) or is an input file of the batch, its own or another's.
    """
    inputs = {s.path.resolve(): s.path for s in sources}
    jobs = []
    owner: dict[str, Path] = {}
    for s in sources:
        paths = [out_dir / name for name in outputs(s.rel)]
        job = Job(s.path, paths)
        for p in paths:
            key = os.path.normcase(os.path.abspath(p)).casefold()
            if key in owner:
                job.error = f"output {p} is also the output of {owner[key]}; not written (rename one, or run them separately)"
                break
            overwritten = inputs.get(p.resolve()) if p.exists() else None
            if overwritten is not None:
                whose = "the input" if overwritten == s.path else f"the batch's input {overwritten}"
                job.error = f"output {p} would overwrite {whose}; choose another -o or a --suffix"
                break
        if job.error is None:
            owner.update((os.path.normcase(os.path.abspath(p)).casefold(), s.path) for p in paths)
        jobs.append(job)
    return jobs
