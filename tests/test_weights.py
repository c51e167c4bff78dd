"""Weights resolution against a real stand-in Hub: download, verify, cache, fall back, refuse."""

import hashlib
import json
import pickle
import subprocess
import sys
import time

import pytest
import torch
from huggingface_hub import try_to_load_from_cache
from typer.testing import CliRunner

import restore_cli.models
from restore_cli.errors import WeightsError
from restore_cli.models import SPAIR, TINY, save_spair
from restore_cli.train.recipe import Recipe
from restore_cli.weights import REGISTRY, WeightsRecord, load_model, resolve
from restore_cli.weights.cli import app

from .hub_server import StandInHub

REPO, FILE = "test-org/spair-derain", "derain.safetensors"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Exploit:
    """A pickle that creates ``marker`` when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    for var in ("HF_HUB_OFFLINE", "RESTORE_HF_ENDPOINT", "HF_ENDPOINT", "RESTORE_HF_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RESTORE_WEIGHTS_DIR", str(tmp_path / "bundled"))
    (tmp_path / "bundled").mkdir()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny SPAIR and its safetensors bytes."""
    torch.manual_seed(0)
    model = SPAIR(TINY).eval()
    path = tmp_path_factory.mktemp("tiny") / FILE
    save_spair(model, path)
    return model, path.read_bytes()


@pytest.fixture
def hub():
    with StandInHub() as server:
        yield server


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "hf-cache"


def pin(monkeypatch, sha: str | None, task: str = "derain") -> WeightsRecord:
    rec = WeightsRecord(task, REPO, FILE, sha, f"recipes/train.sh {task}")
    monkeypatch.setitem(REGISTRY, task, rec)
    return rec


def assert_same_outputs(a: SPAIR, b: SPAIR) -> None:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for ya, yb in zip(a(x), b(x)):
            assert torch.equal(ya, yb)


def one_line_error(fn, *args, **kw) -> str:
    with pytest.raises(WeightsError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


def test_download_verifies_and_loads(tiny, hub, cache, monkeypatch):
    model, data = tiny
    hub.add(REPO, FILE, data)
    rec = pin(monkeypatch, sha256(data))
    monkeypatch.setenv("RESTORE_HF_ENDPOINT", hub.url)  # read at call time
    loaded, weights_id, sha = load_model("derain", cache_dir=cache)
    assert (weights_id, sha) == (rec.weights_id, sha256(data))
    assert ("GET", f"/{REPO}/resolve/main/{FILE}") in hub.requests
    assert_same_outputs(loaded, model)
    assert resolve("derain", cache_dir=cache).source == "cache"


def test_server_down_loads_from_cache(tiny, hub, cache, monkeypatch):
    model, data = tiny
    hub.add(REPO, FILE, data)
    pin(monkeypatch, sha256(data))
    assert resolve("derain", endpoint=hub.url, cache_dir=cache).source == "hub"
    hub.stop()
    assert resolve("derain", endpoint=hub.url, cache_dir=cache).source == "cache"
    assert_same_outputs(load_model("derain", endpoint=hub.url, cache_dir=cache)[0], model)


def test_wrong_checksum_is_refused_and_evicted(tiny, hub, cache, monkeypatch):
    _, data = tiny
    hub.add(REPO, FILE, data)
    pin(monkeypatch, "0" * 64)
    loads = []
    monkeypatch.setattr(restore_cli.models, "load_spair", lambda *a, **k: loads.append(a))
    assert "does not match" in one_line_error(load_model, "derain", endpoint=hub.url, cache_dir=cache)
    assert loads == []
    assert try_to_load_from_cache(REPO, FILE, cache_dir=cache) is None
    assert not [p for p in cache.rglob("*") if p.is_file() and p.read_bytes() == data]


def test_corrupt_cache_entry_is_replaced(tiny, hub, cache, monkeypatch):
    _, data = tiny
    hub.add(REPO, FILE, data)
    pin(monkeypatch, sha256(data))
    first = resolve("derain", endpoint=hub.url, cache_dir=cache)
    first.path.resolve().write_bytes(data[:-1] + b"!")
    again = resolve("derain", endpoint=hub.url, cache_dir=cache)
    assert again.source == "hub" and sha256(again.path.read_bytes()) == sha256(data)


def test_server_down_nothing_cached_no_bundle(tiny, hub, cache, monkeypatch, tmp_path):
    pin(monkeypatch, sha256(tiny[1]))
    hub.stop()
    start = time.monotonic()
    msg = one_line_error(resolve, "derain", endpoint=hub.url, cache_dir=cache)
    assert time.monotonic() - start < 5  # no retry back-off
    assert str(tmp_path / "bundled" / FILE) in msg and "--weights" in msg


def test_server_down_falls_back_to_bundled(tiny, hub, cache, monkeypatch, tmp_path):
    _, data = tiny
    pin(monkeypatch, sha256(data))
    (tmp_path / "bundled" / FILE).write_bytes(data)
    hub.stop()
    assert resolve("derain", endpoint=hub.url, cache_dir=cache).source == "bundled"


def test_bundled_copy_is_verified(tiny, cache, monkeypatch, tmp_path):
    _, data = tiny
    pin(monkeypatch, sha256(data))
    (tmp_path / "bundled" / FILE).write_bytes(data + b" ")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "does not match" in one_line_error(resolve, "derain", cache_dir=cache)


def test_offline_skips_the_network(tiny, hub, cache, monkeypatch, tmp_path):
    _, data = tiny
    hub.add(REPO, FILE, data)
    pin(monkeypatch, sha256(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in one_line_error(resolve, "derain", endpoint=hub.url, cache_dir=cache)
    (tmp_path / "bundled" / FILE).write_bytes(data)
    assert resolve("derain", endpoint=hub.url, cache_dir=cache).source == "bundled"
    assert hub.requests == []


def test_slow_hub_times_out_to_bundled(tiny, cache, monkeypatch, tmp_path):
    _, data = tiny
    pin(monkeypatch, sha256(data))
    (tmp_path / "bundled" / FILE).write_bytes(data)
    monkeypatch.setenv("RESTORE_HF_TIMEOUT", "0.3")
    with StandInHub(delay=3) as slow:
        slow.add(REPO, FILE, data)
        start = time.monotonic()
        assert resolve("derain", endpoint=slow.url, cache_dir=cache).source == "bundled"
        assert time.monotonic() - start < 2.5


def test_served_pickle_is_refused(hub, cache, monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(Exploit(marker))
    pickle.loads(pickle.dumps(Exploit(tmp_path / "live")))
    assert (tmp_path / "live").exists()  # the payload is real
    hub.add(REPO, FILE, data)
    pin(monkeypatch, sha256(data))  # even with a matching checksum
    assert "not a safetensors" in one_line_error(load_model, "derain", endpoint=hub.url, cache_dir=cache)
    assert not marker.exists()
    assert try_to_load_from_cache(REPO, FILE, cache_dir=cache) is None


@pytest.mark.parametrize("fmt", ["safetensors", "state_dict+config", "train_checkpoint"])
def test_user_weights_file(tiny, tmp_path, fmt):
    model, data = tiny
    if fmt == "safetensors":
        path = tmp_path / "mine.safetensors"
        path.write_bytes(data)
    elif fmt == "state_dict+config":
        path = tmp_path / "mine.pth"
        torch.save({**model.state_dict(), "config": TINY.to_dict()}, path)
    else:
        path = tmp_path / "netr.ckpt"
        recipe = json.dumps(Recipe(model=TINY).to_dict())
        torch.save({"model": model.state_dict(), "optim": {}, "step": 3, "elapsed": 1.0, "recipe": recipe}, path)
    loaded, weights_id, sha = load_model("deshadow", weights=path)  # works without a trained record
    assert weights_id == str(path) and sha == sha256(path.read_bytes())
    assert_same_outputs(loaded, model)


def test_malicious_pth_is_refused(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pth"
    torch.save(Exploit(marker), path)
    probe = tmp_path / "probe.pth"
    torch.save(Exploit(tmp_path / "live"), probe)
    torch.load(probe, weights_only=False)
    assert (tmp_path / "live").exists()  # the payload is real
    assert "weights_only" in one_line_error(load_model, "derain", weights=path)
    assert not marker.exists()


def test_untrained_task_is_refused(tiny, hub, cache, monkeypatch, tmp_path):
    _, data = tiny
    hub.add(REPO, FILE, data)
    pin(monkeypatch, None, task="deshadow")
    (tmp_path / "bundled" / FILE).write_bytes(data)
    msg = one_line_error(load_model, "deshadow", endpoint=hub.url, cache_dir=cache)
    assert msg.startswith("no trained weights for task 'deshadow' yet")
    assert hub.requests == []


def test_unknown_task():
    assert "unknown task 'derust'" in one_line_error(resolve, "derust")


def test_registry_import_is_light():
    code = "import sys, restore_cli.weights.registry, restore_cli.weights.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_pull_and_list(tiny, hub, cache, monkeypatch):
    _, data = tiny
    hub.add(REPO, FILE, data)
    pin(monkeypatch, sha256(data))
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "--cache-dir", str(cache)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "missing" in listed.output
    pulled = runner.invoke(app, ["pull", "derain", "--endpoint", hub.url, "--cache-dir", str(cache)])
    assert pulled.exit_code == 0, pulled.output
    assert try_to_load_from_cache(REPO, FILE, cache_dir=cache) is not None
    listed = runner.invoke(app, ["list", "--cache-dir", str(cache)], env={"COLUMNS": "200"})
    row = next(line for line in listed.output.splitlines() if "derain " in line)
    assert "cache" in row and sha256(data)[:12] in row
    hub.stop()
    failed = runner.invoke(app, ["pull", "derain", "--endpoint", hub.url, "--cache-dir", str(cache / "new")])
    assert failed.exit_code == 1 and "cannot download" in failed.output


@pytest.mark.parametrize("task", [t for t, rec in REGISTRY.items() if rec.sha256])
def test_shipped_weights_match_their_pin_and_recipe(task):
    """Every pinned task ships its file in weights/, with that sha256 and the recipe's architecture."""
    from restore_cli.weights.registry import REPO_ROOT

    rec = REGISTRY[task]
    path = REPO_ROOT / "weights" / rec.filename  # the repository's copy (the tests point weights_dir elsewhere)
    assert path.is_file(), f"{path} missing"
    assert sha256(path.read_bytes()) == rec.sha256
    model, _, _ = load_model(task, weights=path)  # strict load against the config in the file
    recipe = Recipe.load(rec.recipe_json)
    assert model.cfg == recipe.model and recipe.task == task
