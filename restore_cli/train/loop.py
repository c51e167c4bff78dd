"""The training loop for NetL (BCE against the GT mask) and NetR (L1, NetL frozen).

Checkpoints hold only tensors and plain values and are read back with
``torch.load(weights_only=True)``. Batches depend only on ``(seed, step)``,
so ``--resume`` continues a run exactly where it stopped. With ``netr_ema``
set, a NetR checkpoint also holds a moving average of the weights
(``"ema"``); that is what is validated and exported (``shipped_state``).
"""

from __future__ import annotations

import copy
import json
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console

from ..metrics import f1_score, psnr
from ..models import SPAIR, save_spair
from ..models.blocks import DenseBlock, GlobalContext
from ..models.netr import NetR
from ..weights.hub import is_safetensors, shipped_state
from .data import StepBatches, step_batches
from .recipe import Recipe

console = Console(stderr=True)
FFT_LOSS_WEIGHT = 0.1  # netr_loss "l1+fft": MIMO-UNet's weight of the spectral term


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (read with ``weights_only=True``). An exported
    ``.safetensors`` gives ``{"model": its tensors}``: enough to start from
    (``netr_init``, ``netl_init``), not to resume."""
    if is_safetensors(path):  # recognised by content, as ``restore --weights`` does
        from safetensors.torch import load_file

        return {"model": load_file(str(path))}
    return torch.load(str(path), map_location="cpu", weights_only=True)


def _frozen_netl_pass(model: SPAIR, degraded: torch.Tensor, cut: torch.Tensor | float | None = None):
    """NetL's mask (``SPAIR.cut`` at ``cut``: a number, one per sample, or by default the
    model's ``mask_logit``) and its features."""
    with torch.no_grad():
        logits, feats = model.netl(degraded)
    return model.cut(logits, cut), [f.detach() for f in feats]


def mask_cuts(recipe: Recipe, step: int, batch: int) -> torch.Tensor:
    """The logit each sample's NetR training mask is cut at: the model's ``mask_logit``
    plus a uniform draw from ``[-netr_mask_jitter, netr_mask_jitter]``, a function of
    ``(seed, step)`` for ``--resume``."""
    rng = np.random.default_rng([recipe.seed, step, 7])
    jitter = torch.from_numpy(rng.uniform(-1, 1, batch).astype(np.float32)) * recipe.netr_mask_jitter
    return recipe.model.mask_logit + jitter


def _load_netl(model: SPAIR, path: Path, required: bool) -> None:
    """Put the NetL of checkpoint ``path`` into ``model`` (needed before NetR's first step)."""
    if not path.exists():
        if required:
            raise FileNotFoundError(f"{path}: NetR needs a trained NetL checkpoint (train netl first or pass --init)")
        return
    ck = load_checkpoint(path)
    netl = {k.removeprefix("netl."): v for k, v in shipped_state(ck).items() if k.startswith("netl.")}
    current = model.netl.state_dict()
    if not required and any(not torch.equal(v, current[k].cpu()) for k, v in netl.items()):
        console.log(f"NetL changed since the last NetR run: continuing with {path} (step {ck['step']})")
    model.netl.load_state_dict(netl)


def mask_loss(logits: torch.Tensor, gt_mask: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """NetL's loss: BCE against the GT mask, degraded pixels weighted by ``netl_pos_weight``,
    plus ``netl_dice`` times the soft Dice loss of each sample's mask (1 - its soft F1)."""
    loss = weighted_bce(logits, gt_mask, recipe)
    if recipe.netl_dice:
        loss = loss + recipe.netl_dice * soft_dice_loss(logits - recipe.model.mask_logit, gt_mask)
    return loss


def weighted_bce(logits: torch.Tensor, gt_mask: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """BCE against the GT mask, degraded pixels weighted by ``netl_pos_weight``."""
    pos_weight = torch.tensor(recipe.netl_pos_weight, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, gt_mask, pos_weight=pos_weight)


def soft_dice_loss(logits: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """1 - soft F1 of sigmoid(logits) against the GT mask, per sample, averaged.

    F1 counts pixels, so it rewards getting the boundary pixels of every degraded
    region right, which a per-pixel BCE weighs no more than the easy ones. The +1
    keeps a sample with nothing degraded and nothing predicted at zero loss.
    """
    p = torch.sigmoid(logits).flatten(1)
    g = gt_mask.flatten(1)
    return (1 - (2 * (p * g).sum(1) + 1) / (p.sum(1) + g.sum(1) + 1)).mean()


def pixel_loss(restored: torch.Tensor, clean: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """NetR's loss: the recipe's ``netr_loss`` between its output and the clean photo."""
    if recipe.netr_loss == "mse":
        return F.mse_loss(restored, clean)
    loss = F.l1_loss(restored, clean)
    if recipe.netr_loss == "l1+fft":
        # Cho et al., MIMO-UNet (ICCV 2021): its frequency reconstruction loss, real and imaginary parts.
        spectra = torch.view_as_real(torch.fft.rfft2(restored.float() - clean.float()))
        loss = loss + FFT_LOSS_WEIGHT * spectra.abs().mean()
    return loss


def validate(model: SPAIR, stage: str, val: tuple[torch.Tensor, ...], recipe: Recipe) -> dict[str, float]:
    """Mask F1/BCE for NetL, RGB PSNR (restored vs input) for NetR, on the fixed val batch."""
    degraded, clean, gt_mask = val
    model.eval()
    with torch.no_grad():
        if stage == "netl":
            logits, _ = model.netl(degraded)
            f1 = f1_score(model.cut(logits).cpu().numpy() > 0, gt_mask.cpu().numpy() > 0.5)
            result = {"bce": weighted_bce(logits, gt_mask, recipe).item(), "f1": f1}
        else:
            mask, feats = _frozen_netl_pass(model, degraded)
            out = model.netr(degraded, mask, feats).clamp(0, 1)
            out, clean, degraded = (t.cpu().numpy() for t in (out, clean, degraded))
            result = {"psnr": psnr(out, clean, 1.0), "input_psnr": psnr(degraded, clean, 1.0)}
    model.train()
    return result


def transplant(module: torch.nn.Module, checkpoint: dict, prefix: str) -> None:
    """Start ``module`` from the ``prefix`` tensors of a checkpoint of another configuration.

    A tensor whose name the module also has is copied, cut to the module's shape
    (its leading slice: e.g. a 1x1 merge conv that loses an input branch keeps the
    weights of the branches before it); the module's other tensors keep their init.
    A NetR with more levels than the source's, dense blocks with more layers and
    context blocks that see more statistics are then made to compute what the
    source did (``_deepen``, ``_grow_dense_blocks``, ``_grow_context_blocks``).
    """
    source = {k.removeprefix(prefix): v for k, v in shipped_state(checkpoint).items() if k.startswith(prefix)}
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name in source and source[name].dim() == tensor.dim():
                cut = source[name][tuple(slice(0, n) for n in tensor.shape)]
                tensor[tuple(slice(0, n) for n in cut.shape)].copy_(cut)
        levels = 1 + len({k.split(".")[1] for k in source if k.startswith("enc.")})
        if isinstance(module, NetR) and levels < len(module.cfg.widths):
            _deepen(module, source, levels)
        _grow_dense_blocks(module, source)
        _grow_context_blocks(module, source)


def _grow_dense_blocks(module: torch.nn.Module, source: dict[str, torch.Tensor]) -> None:
    """Dense blocks with more layers than the source's (same channels and growth) start
    computing what the source's did: their fusion ignores the new layers' outputs
    (zero weights), which training then brings in."""
    for name, block in module.named_modules():
        fuse = source.get(f"{name}.fuse.weight")
        if not isinstance(block, DenseBlock) or fuse is None:
            continue
        first = source.get(f"{name}.convs.0.0.weight")
        same_widths = fuse.shape[0] == block.fuse.out_channels and first.shape[0] == block.convs[0][0].out_channels  # channels, growth
        if same_widths and fuse.shape[1] < block.fuse.in_channels:
            block.fuse.weight[:, fuse.shape[1] :].zero_()


def _grow_context_blocks(module: torch.nn.Module, source: dict[str, torch.Tensor]) -> None:
    """Context blocks that see more statistics than the source's (``context_extremes``)
    start ignoring the new ones (zero weights), so they compute what the source's did."""
    for name, block in module.named_modules():
        first = source.get(f"{name}.mlp.0.weight")
        if isinstance(block, GlobalContext) and first is not None and first.shape[1] < block.mlp[0].in_features:
            block.mlp[0].weight[:, first.shape[1] :].zero_()


def _deepen(netr: NetR, source: dict[str, torch.Tensor], levels: int) -> None:
    """Make a NetR deeper than the ``levels``-level source it was transplanted from
    compute the source's output, so that training starts from it.

    The source's bottleneck (``mid``, ``mid_context``) becomes the encoder block and
    the context block of the new NetR's level ``levels - 1``; the deeper path starts
    switched off: that level's skip fusion passes the encoder features through and its
    decoder level (SC/SNL merge, dense block) adds nothing.
    """
    last = levels - 1
    for name, target in (("mid", f"enc.{last}"), ("mid_context", f"dec.{last}.context")):
        state = {k.removeprefix(name + "."): v for k, v in source.items() if k.startswith(name + ".")}
        if state:  # (a context block that is the identity has no tensors)
            netr.get_submodule(target).load_state_dict(state)
    fuse = netr.up[last].fuse  # 1x1 conv of [upsampled deeper features, skip]
    width = fuse.out_channels
    fuse.weight.zero_()
    fuse.weight[:, width:, 0, 0] = torch.eye(width)
    fuse.bias.zero_()
    level = netr.dec[last]
    for conv in (level.merge, level.dense.fuse):
        conv.weight.zero_()
        conv.bias.zero_()


def train(
    stage: str,
    recipe: Recipe,
    data,
    val: tuple[torch.Tensor, ...],
    out_dir: str | Path,
    steps: int | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    checkpoint_minutes: float = 3.0,
    log_every: int = 25,
    device: str | torch.device = "cpu",
    workers: int = 0,
) -> Path:
    """Train ``stage`` ('netl' or 'netr') and return the checkpoint path.

    NetR training takes NetL from ``init`` (a NetL checkpoint, or the NetL
    stage's checkpoint in ``out_dir``) and keeps it frozen. NetL is read from
    there on ``resume`` too, so a NetL trained further since the last NetR run
    is picked up: NetR then goes on adapting to it.

    ``device`` is where the steps run (a CUDA GPU trains many times faster; the
    checkpoints load anywhere); ``workers`` processes make the coming batches
    ahead, the same batches as without them.
    """
    if stage not in ("netl", "netr"):
        raise ValueError("stage must be 'netl' or 'netr'")
    out_dir = Path(out_dir)
    ckpt_path = out_dir / f"{stage}.ckpt"
    total = steps if steps is not None else getattr(recipe, f"{stage}_steps")
    if total == 0:
        console.log(f"the recipe trains no {stage}")
        return ckpt_path
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)

    device = torch.device(device)
    model = SPAIR(recipe.model).to(device)
    trained = model.netl if stage == "netl" else model.netr
    opt = torch.optim.Adam(trained.parameters(), lr=recipe.lr)
    step, elapsed = 0, 0.0
    ck = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else {}
    if ck:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        step, elapsed = int(ck["step"]), float(ck["elapsed"])
        console.log(f"resumed {ckpt_path} at step {step}")
    if stage == "netl" and step == 0 and recipe.netl_init:
        transplant(model.netl, load_checkpoint(recipe.netl_init), prefix="netl.")
        console.log(f"NetL starts from {recipe.netl_init}")
    if stage == "netr":
        own_netl = out_dir / "netl.ckpt"
        if init is None and not own_netl.exists():
            # a recipe that trains no NetL of its own: netl_init's NetL as is, else netr_init's
            init = recipe.netl_init or recipe.netr_init or None
        _load_netl(model, Path(init) if init else own_netl, required=step == 0)
        if step == 0 and recipe.netr_init:
            transplant(model.netr, load_checkpoint(recipe.netr_init), prefix="netr.")
            console.log(f"NetR starts from {recipe.netr_init}")
    model.netl.requires_grad_(stage == "netl")
    model.train()
    # The moving average of NetR's weights from step netr_ema_start on (NetL, frozen,
    # is the same in both); it starts at the weights of that step.
    keeps_ema = stage == "netr" and recipe.netr_ema > 0
    ema = None
    if keeps_ema and "ema" in ck:
        ema = copy.deepcopy(model)
        ema.load_state_dict(ck["ema"])
        ema.netl.load_state_dict(model.netl.state_dict())

    def save() -> None:
        _save_atomic(
            {"model": model.state_dict(), "optim": opt.state_dict(), "step": step, "elapsed": elapsed,
             "recipe": json.dumps(recipe.to_dict()), **({"ema": ema.state_dict()} if ema is not None else {})},
            ckpt_path,
        )

    log = (out_dir / f"{stage}.log").open("a")
    val = tuple(t.to(device) for t in val)
    batches = iter(step_batches(StepBatches(data, recipe.seed, step, total, recipe.batch, partial(recipe.crop_at, stage)),
                                workers, pin_memory=device.type == "cuda"))
    last_save, t0, window, window_seconds = time.time(), time.time(), [], 0.0
    while step < total:
        if keeps_ema and ema is None and step >= recipe.netr_ema_start:
            ema = copy.deepcopy(model)
        for group in opt.param_groups:
            group["lr"] = recipe.lr_at(stage, step)
        degraded, clean, gt_mask = (t.to(device, non_blocking=True) for t in next(batches))
        with torch.autocast(device.type, torch.bfloat16, enabled=recipe.precision == "bf16"):
            if stage == "netl":
                logits, _ = model.netl(degraded)
                loss = mask_loss(logits.float(), gt_mask, recipe)
            else:
                mask, feats = _frozen_netl_pass(model, degraded, mask_cuts(recipe, step, len(degraded)))
                loss = pixel_loss(model.netr(degraded, mask, feats).float(), clean, recipe)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if ema is not None:
            with torch.no_grad():
                for avg, p in zip(ema.netr.parameters(), trained.parameters()):
                    avg.lerp_(p, 1 - recipe.netr_ema)
        window.append(loss.item())
        now = time.time()
        elapsed += now - t0
        window_seconds += now - t0
        t0 = now
        if step % log_every == 0 or step == total:
            metrics = validate(model if ema is None else ema, stage, val, recipe)
            it_s = len(window) / max(window_seconds, 1e-9)
            line = {"step": step, "loss": float(np.mean(window)), "it_s": it_s, **metrics, "elapsed_min": elapsed / 60}
            window, window_seconds = [], 0.0
            t0 = time.time()  # validation time is not training time
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items())
            console.log(f"[{stage}] {step}/{total} {shown}")
            log.write(json.dumps(line) + "\n")
            log.flush()
        if now - last_save > checkpoint_minutes * 60:
            save()
            last_save = now
    save()
    log.close()
    return ckpt_path


def export(checkpoint: str | Path, out: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write the SPAIR weights of a NetR checkpoint (which holds NetL too) as safetensors."""
    ck = load_checkpoint(checkpoint)
    model = SPAIR(Recipe.from_dict(json.loads(ck["recipe"])).model)
    model.load_state_dict(shipped_state(ck))
    meta = {"steps": str(ck["step"]), "train_minutes": f"{ck['elapsed'] / 60:.1f}"}
    meta.update(extra or {})
    save_spair(model, out, meta)
    return Path(out)
