"""Find a task's weights, verify them, and build the model.

Resolution order, first hit wins:

1. ``--weights FILE`` from the user: safetensors, or ``.pth/.pt/.ckpt`` read
   only with ``torch.load(weights_only=True)``; not pinned, but hashed.
2. The local Hugging Face cache, sha256-verified (a bad entry is evicted).
3. A download with ``hf_hub_download``, then sha256-verified here (the Hub
   client only checks the size); a mismatch is an error and the file is evicted.
4. The bundled copy in ``weights/``, sha256-verified.

Registry files must be safetensors, so nothing from the network is unpickled.
The environment is read at call time: ``RESTORE_HF_ENDPOINT``/``HF_ENDPOINT``,
``HF_HUB_OFFLINE`` and ``RESTORE_HF_TIMEOUT`` (seconds, default 10).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache

from ..errors import WeightsError
from .registry import WeightsRecord, get_record

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")


@dataclass(frozen=True)
class Resolved:
    path: Path
    sha256: str
    source: str  # "file", "cache", "hub" or "bundled"
    weights_id: str


class HubUnavailable(Exception):
    """The Hub could not serve the file (network down, offline, repo or file missing)."""


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_safetensors(path: str | Path) -> bool:
    """True if ``path`` parses as safetensors (8-byte length + JSON header); pickles and zips do not."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            return True
    except (SafetensorError, OSError):
        return False


def hub_endpoint(endpoint: str | None = None) -> str | None:
    """The argument, else ``$RESTORE_HF_ENDPOINT``, else ``$HF_ENDPOINT``, else None (huggingface.co)."""
    return endpoint or os.environ.get("RESTORE_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or None


def offline() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub itself reads it only at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_timeout() -> float:
    value = os.environ.get("RESTORE_HF_TIMEOUT") or DEFAULT_TIMEOUT
    try:
        return float(value)
    except ValueError:
        raise WeightsError(f"RESTORE_HF_TIMEOUT={value!r}: not a number of seconds") from None


def _verified(path: str | Path, rec: WeightsRecord, source: str) -> Resolved:
    """Check the pinned sha256 and the safetensors format; WeightsError if either fails."""
    digest = sha256_of(path)
    if digest != rec.sha256:
        raise WeightsError(f"{path}: sha256 {digest} does not match {rec.sha256} pinned for {rec.weights_id}")
    if not is_safetensors(path):
        raise WeightsError(f"{path}: not a safetensors file; refusing to load it")
    return Resolved(Path(path), digest, source, rec.weights_id)


def _evict(path: str | Path) -> None:
    """Remove a Hub cache entry: the snapshot link and the blob it points to."""
    link = Path(path)
    blob = link.resolve()
    link.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def from_cache(rec: WeightsRecord, cache_dir: str | Path | None = None) -> Resolved | None:
    """The verified cached file, or None (a cached file that fails verification is evicted)."""
    path = try_to_load_from_cache(rec.repo_id, rec.filename, cache_dir=cache_dir, revision=rec.revision)
    if not isinstance(path, str):
        return None
    try:
        return _verified(path, rec, "cache")
    except WeightsError as err:
        log.warning("evicting bad cache entry: %s", err)
        _evict(path)
        return None


def download(rec: WeightsRecord, endpoint: str | None = None, cache_dir: str | Path | None = None) -> Resolved:
    """Download into the Hub cache and verify; HubUnavailable if the Hub cannot serve it."""
    endpoint = hub_endpoint(endpoint)
    url = hf_hub_url(rec.repo_id, rec.filename, revision=rec.revision, endpoint=endpoint)
    timeout = hub_timeout()
    try:
        # A single HEAD without retries first: when nothing is cached, hf_hub_download
        # retries a failed HEAD with back-off (about 25 s) before giving up.
        get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
        path = hf_hub_download(
            rec.repo_id, rec.filename, revision=rec.revision, endpoint=endpoint,
            cache_dir=cache_dir, etag_timeout=timeout,
        )
    except Exception as err:  # any failure to fetch (network, HTTP status, offline) means "not available"
        raise HubUnavailable(f"{url}: {_one_line(err)}") from err
    try:
        return _verified(path, rec, "hub")
    except WeightsError as err:
        _evict(path)
        raise WeightsError(f"{err} (downloaded from {url}; removed from the cache)") from None


def _user_file(path: Path) -> Resolved:
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    return Resolved(path, sha256_of(path), "file", str(path))


def resolve(
    task: str,
    weights: str | Path | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
) -> Resolved:
    """Locate verified weights for ``task`` (see the module docstring for the order)."""
    if weights is not None:
        return _user_file(Path(weights))
    rec = get_record(task)
    cached = from_cache(rec, cache_dir)
    if cached is not None:
        return cached
    reason = "HF_HUB_OFFLINE is set"
    if not offline():
        try:
            return download(rec, endpoint, cache_dir)
        except HubUnavailable as err:
            reason = str(err)
    if rec.bundled_path.is_file():
        return _verified(rec.bundled_path, rec, "bundled")
    raise WeightsError(
        f"no weights for task '{task}': not cached, not downloadable ({reason}), no bundled copy; "
        f"put {rec.filename} at {rec.bundled_path} or pass --weights FILE"
    )


def pull(task: str, endpoint: str | None = None, cache_dir: str | Path | None = None) -> Resolved:
    """Make sure the task's verified weights are in the Hub cache (download them if needed)."""
    rec = get_record(task)
    cached = from_cache(rec, cache_dir)
    if cached is not None:
        return cached
    if offline():
        raise WeightsError(f"cannot download {rec.weights_id}: HF_HUB_OFFLINE is set")
    try:
        return download(rec, endpoint, cache_dir)
    except HubUnavailable as err:
        raise WeightsError(f"cannot download {rec.weights_id}: {err}") from None


def present(rec: WeightsRecord, cache_dir: str | Path | None = None) -> tuple[str, Path | None]:
    """Where a copy of the record's file is, without verifying it: ('cache'|'bundled'|'missing', path)."""
    cached = try_to_load_from_cache(rec.repo_id, rec.filename, cache_dir=cache_dir, revision=rec.revision)
    if isinstance(cached, str):
        return "cache", Path(cached)
    if rec.bundled_path.is_file():
        return "bundled", rec.bundled_path
    return "missing", None


def shipped_state(ck: dict) -> dict:
    """The weights of a training checkpoint to use downstream: its moving average
    (``"ema"``) when it kept one, else its ``"model"``."""
    return ck.get("ema", ck["model"])


def _model_from_checkpoint(path: Path):
    """A SPAIR from a torch checkpoint, read with ``weights_only=True`` (never a full unpickle).

    Accepts the training format ``{"model": state_dict, "recipe": json}`` (its
    ``"ema"`` weights instead when it has them) and
    ``{"model": state_dict, "config": cfg}`` or a state_dict with a ``"config"``
    entry, where cfg is a SPAIRConfig dict or its JSON.
    """
    import torch

    from ..models import SPAIR, SPAIRConfig

    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for unsafe globals, RuntimeError/EOFError for corrupt files
        raise WeightsError(f"{path}: refused by torch.load(weights_only=True): {_one_line(err)}") from None
    if not isinstance(ck, dict):
        raise WeightsError(f"{path}: expected a dict checkpoint, got {type(ck).__name__}")
    state = shipped_state(ck) if "model" in ck else {k: v for k, v in ck.items() if k != "config"}
    cfg = ck.get("config") or (json.loads(ck["recipe"])["model"] if "recipe" in ck else None)
    if cfg is None:
        raise WeightsError(f"{path}: no model config (expected a 'config' or 'recipe' entry)")
    model = SPAIR(SPAIRConfig.from_dict(json.loads(cfg) if isinstance(cfg, str) else cfg))
    model.load_state_dict(state, strict=True)
    return model.eval()


def _load(path: Path):
    from ..models import load_spair

    try:
        if is_safetensors(path):
            return load_spair(path)
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            return _model_from_checkpoint(path)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:  # wrong config or tensor shapes
        raise WeightsError(f"{path}: not usable SPAIR weights: {_one_line(err)}") from None
    raise WeightsError(f"{path}: not a safetensors file nor a {'/'.join(CHECKPOINT_SUFFIXES)} checkpoint")


def load_model(task: str, weights: str | Path | None = None, **resolve_kw):
    """``(SPAIR in eval mode, weights_id, sha256)`` for ``task``; WeightsError if none can be had."""
    res = resolve(task, weights, **resolve_kw)
    return _load(res.path), res.weights_id, res.sha256
