"""CPU fast path for SPAIR's sparse ops: the cost follows the mask density.

Same results as ``ops.reference`` (to float rounding), with autograd.
A pixel is *active* where ``mask != 0``; ``ActiveSet`` finds the active
pixels of a mask once so that every op at that resolution (the convs of an
SC stack, both SNL steps) can share the work.

* ``masked_conv2d`` runs the compiled kernel of ``ops.native`` where it can
  (inference on channels-last float32 maps, up to ``NATIVE_DENSE_ABOVE``
  density): one pass over the mask, no index. Elsewhere ``sparse_conv2d``
  gathers the 3x3 (or 1x1) neighbourhoods of the active
  pixels only (im2col rows, neighbour mask applied), multiplies them by the
  weights (GEMM, a cache-sized chunk at a time) and scatters the result into
  a zeroed output. Above ``DENSE_ABOVE`` density a dense conv is cheaper and
  is used instead. Channels-last inputs gather and scatter several times
  faster (each pixel's channels are contiguous) and give channels-last outputs.
  In inference the GEMM is oneDNN's linear (``_linear``).
* ``masked_conv_stack`` (SC's whole stack of convs) gathers the active pixels
  once and keeps them as rows through every conv, scattering only the result.
* ``directional_attention`` scores only the degraded (active) queries of
  the rows and columns that have any, against the clean keys of their own
  line, a few lines at a time so that the scores stay in cache.
* ``masked_mean_std_pair`` (SFM's statistics of the degraded and of the clean
  pixels) reads the features once as pixel rows and sums them with two GEMMs.
"""

from __future__ import annotations

import math
from functools import cached_property, partial

import torch
import torch.nn.functional as F

from . import native, reference

# Above this fraction of active pixels masked_conv2d runs the (masked) dense conv:
# benchmarks/sparse_ops.py puts the crossing between 0.3 and 0.5 on CPU (it moves
# with the conv's shape, but a per-shape threshold changed nothing end to end).
DENSE_ABOVE = 0.3
# The same for the compiled kernel (ops.native), which builds no index: benchmarks/sparse_ops.py
# puts its crossing with the masked dense conv near 0.65 for NetR's 3x3 convs (later for 1x1).
NATIVE_DENSE_ABOVE = 0.6
# masked_conv_stack keeps features as rows of active pixels up to this density: with one
# gather and one scatter for the whole SC stack its crossing is higher (benchmarks/sparse_ops.py).
STACK_DENSE_ABOVE = 0.55
CHUNK_ELEMENTS = 2**20  # im2col values per GEMM in sparse_conv2d (4 MB)
ATTENTION_CHUNK = 2**18  # attention scores per chunk of lines in directional_attention (1 MB, a core's L2)
COMPACT_KEYS_BELOW = 0.8  # directional_attention scores only the clean keys when every line has fewer


class ActiveSet:
    """The active pixels of a ``(B, 1, H, W)`` mask, found once and shared by the ops."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask
        self.batch, _, self.height, self.width = mask.shape
        self.count = int(torch.count_nonzero(mask))
        self.density = self.count / max(mask.numel(), 1)
        self._taps: dict[int, torch.Tensor] = {}

    @cached_property
    def full(self) -> bool:
        """Every pixel active with mask value 1: masking changes nothing."""
        return self.count == self.mask.numel() and bool((self.mask == 1).all())

    @cached_property
    def coords(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(b, y, x)`` of each active pixel, in raster order."""
        return self.mask[:, 0].nonzero(as_tuple=True)

    @cached_property
    def index(self) -> torch.Tensor:
        """Flat indices ``b*H*W + y*W + x`` of the active pixels, in raster order (from
        ``coords``: cheaper than a flat ``nonzero`` and three int64 divisions)."""
        b, y, x = self.coords
        return (b * self.height + y) * self.width + x

    @cached_property
    def values(self) -> torch.Tensor:
        """The mask value of each active pixel."""
        return torch.flatten(self.mask)[self.index]

    @cached_property
    def binary(self) -> bool:
        """Every active pixel has mask value 1 (NetL's masks): scaling by the mask is a no-op."""
        return bool((self.values == 1).all())

    def scaled(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` (one per active pixel, then the zero row) times the mask value there."""
        return rows if self.binary else rows * F.pad(self.values, (0, 1))[:, None]

    @cached_property
    def rank(self) -> torch.Tensor:
        """``(B, H, W)``: each active pixel's position among the active pixels, N at the
        inactive ones; int32 where N fits (less memory to build and to read than int64)."""
        dtype = torch.int32 if self.count < 2**31 else torch.long
        rank = torch.full((self.mask.numel(),), self.count, dtype=dtype, device=self.mask.device)
        rank.index_copy_(0, self.index, torch.arange(self.count, dtype=dtype, device=self.mask.device))
        return rank.view(self.batch, self.height, self.width)

    def taps(self, k: int) -> torch.Tensor:
        """``(N, k*k)``: for each active pixel and each tap of a k x k kernel (Conv2d's
        (ky, kx) order), the position of that neighbour among the active pixels, or N
        where the neighbour is inactive or outside the image."""
        if k not in self._taps:
            r = k // 2
            b, y, x = self.coords
            grid = F.pad(self.rank, (r, r, r, r), value=self.count) if r else self.rank  # r-pixel border of N
            ph, pw = grid.shape[1:]
            dtype = torch.int32 if grid.numel() < 2**31 else torch.long  # of the indices into grid
            centre = ((b * ph + y + r) * pw + x + r).to(dtype)
            d = torch.arange(-r, r + 1, dtype=dtype, device=grid.device)
            offsets = (d[:, None] * pw + d[None, :]).flatten()
            self._taps[k] = grid.flatten().index_select(0, (centre[:, None] + offsets).flatten()).view(-1, k * k)
        return self._taps[k]

    # Rows: a (N + 1, C) tensor holds a value per active pixel, then a row of zeros
    # (where ``taps`` points for inactive neighbours, and ``rank`` for inactive pixels).

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """x * mask at the active pixels, as rows."""
        c = x.shape[1]
        if _channels_last(x):  # each pixel's channels are contiguous: much faster
            rows = x.permute(0, 2, 3, 1).reshape(-1, c).index_select(0, F.pad(self.index, (0, 1)))
            rows[-1] = 0  # gathered from pixel 0
        else:
            rows = F.pad(self.pick(x), (0, 0, 0, 1))
        return self.scaled(rows)

    def pick(self, x: torch.Tensor) -> torch.Tensor:
        """x at the active pixels, ``(N, C)`` (no zero row, not scaled)."""
        if _channels_last(x):
            return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).index_select(0, self.index)
        return x.permute(0, 2, 3, 1)[self.coords]

    def put(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """A copy of x (same memory format) with the active pixels' values replaced by
        ``rows`` ``(N, C)``."""
        out = x.clone()
        pixels = out.permute(0, 2, 3, 1)  # (B, H, W, C): contiguous for channels-last
        if _channels_last(x):
            pixels.reshape(-1, x.shape[1]).index_copy_(0, self.index, rows.to(x.dtype))
        else:
            pixels[self.coords] = rows.to(x.dtype)
        return out

    def scatter(self, rows: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """Rows -> ``(B, C, H, W)``, zeros at the inactive pixels, in channels-last
        memory format if asked."""
        c = rows.shape[1]
        if channels_last:  # a gather of every pixel's row: one pass over the output
            out = rows.index_select(0, self.rank.flatten())
            return out.view(self.batch, self.height, self.width, c).permute(0, 3, 1, 2)
        out = rows.new_zeros(c, self.mask.numel()).index_copy_(1, self.index, rows[:-1].T)
        return out.view(c, self.batch, self.height, self.width).transpose(0, 1).contiguous()


def masked_mean_std_pair(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """``reference.masked_mean_std`` over ``mask`` and over ``1 - mask``, at once.

    The weighted sums of the pixel rows, and of their squares about each
    channel's mean over all pixels (so the variance loses no precision to
    cancellation), are two ``(2, HW) @ (HW, C)`` GEMMs, in float32 at least:
    2.4-4x faster than the reference's two calls, whose reductions over
    dims (2, 3) of a channels-last map are slow, and more accurate in bf16.
    Results in x's dtype (the counts in the mask's).
    """
    b, c, h, w = x.shape
    dtype = torch.promote_types(x.dtype, torch.float32)
    rows = x.permute(0, 2, 3, 1).reshape(b, h * w, c).to(dtype)  # a view of a channels-last float32 map
    inside = mask.reshape(b, 1, h * w).to(dtype)
    weights = torch.cat([inside, 1 - inside], dim=1)  # (B, 2, HW)
    with torch.autocast(x.device.type, enabled=False):  # (autocast would run the GEMMs in bf16)
        count = weights.sum(dim=2, keepdim=True)  # (B, 2, 1)
        sums = torch.bmm(weights, rows)  # (B, 2, C)
        centre = sums.sum(dim=1, keepdim=True) / (h * w)  # each channel's mean over all pixels
        squares = torch.bmm(weights, torch.square(rows - centre))
        denom = count.clamp_min(1.0)
        mean = sums / denom
        std = torch.sqrt((squares / denom - torch.square(mean - centre)).clamp_min(0) + eps)
    return tuple(
        (mean[:, k, :, None, None].to(x.dtype), std[:, k, :, None, None].to(x.dtype),
         count[:, k, :, None, None].to(mask.dtype))
        for k in (0, 1)
    )


def _channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def masked_conv2d(
    x: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    active: ActiveSet | None = None,
) -> torch.Tensor:
    """``reference.masked_conv2d``: the compiled kernel up to ``NATIVE_DENSE_ABOVE``
    density where it applies, else ``sparse_conv2d`` up to ``DENSE_ABOVE``; dense
    above, a plain conv when the mask is all ones.

    ``active`` is ``ActiveSet(mask)``; pass it to share it between convs.
    """
    active = ActiveSet(mask) if active is None else active
    if active.full:
        return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)
    if active.density <= NATIVE_DENSE_ABOVE and (out := native.sparse_conv2d(x, mask, weight, bias)) is not None:
        return out
    if active.density > DENSE_ABOVE:
        return reference.masked_conv2d(x, mask, weight, bias)
    return sparse_conv2d(x, weight, bias, active)


def sparse_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, active: ActiveSet
) -> torch.Tensor:
    """``reference.masked_conv2d`` by gather -> GEMM -> scatter over the active pixels only."""
    rows = _conv_rows(active.gather(x), weight, bias, active)
    return active.scatter(active.scaled(rows), channels_last=_channels_last(x))


def _conv_rows(
    feats: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, active: ActiveSet
) -> torch.Tensor:
    """The conv at the active pixels, as rows (``ActiveSet``), from their features
    ``feats``, rows too.

    The im2col rows are built and multiplied ``CHUNK_ELEMENTS`` at a time, so
    they stay in cache (and clear of allocations big enough to be mmapped).
    """
    cout, cin, k, _ = weight.shape
    taps = active.taps(k)  # (N, k*k)
    kernel = weight.permute(0, 2, 3, 1).reshape(cout, k * k * cin)  # columns in taps' order
    step = max(1, CHUNK_ELEMENTS // (k * k * cin))
    rows = [
        _linear(feats.index_select(0, taps[i : i + step].flatten()).view(-1, k * k * cin), kernel, bias)
        for i in range(0, active.count, step)
    ]
    return torch.cat([*rows, feats.new_zeros(1, cout)])


def masked_conv_stack(
    x: torch.Tensor,
    mask: torch.Tensor,
    convs: list[reference.Conv],
    fuse: reference.Conv,
    slope: float = 0.2,
    active: ActiveSet | None = None,
) -> torch.Tensor:
    """``reference.masked_conv_stack`` (SC). Up to ``STACK_DENSE_ABOVE`` density the
    features stay rows of active pixels through the whole stack: one gather, one
    scatter, and the dense connections concatenate N rows instead of H x W pixels.
    Above it, the convs run dense, the input masked once (every later feature is a
    masked conv's output, already zero off the mask).
    """
    active = ActiveSet(mask) if active is None else active
    if active.full or not active.binary:  # plain convs; or a soft mask, which scales each feature at every conv
        return reference.masked_conv_stack(x, mask, convs, fuse, slope, conv=partial(masked_conv2d, active=active))
    if active.density > STACK_DENSE_ABOVE:
        return reference.masked_conv_stack(x * mask, mask, convs, fuse, slope, conv=_conv_then_mask)
    rows = active.gather(x)
    for weight, bias in convs:
        rows = torch.cat([rows, F.leaky_relu(_conv_rows(rows, weight, bias, active), slope)], dim=1)
    return active.scatter(_conv_rows(rows, *fuse, active), channels_last=_channels_last(x))


def _conv_then_mask(
    x: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``reference.masked_conv2d`` for an ``x`` already zero off a binary ``mask``."""
    return mask * F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)


# oneDNN's fused linear (what torch.compile uses on CPU); it has no autograd formula.
_ONEDNN_LINEAR = (
    getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if torch.backends.mkldnn.is_available()
    else None
)


def _linear(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear``; in inference through oneDNN's linear, about 1.4x faster for these
    narrow (C_out = 16-64) GEMMs than the BLAS call behind ``F.linear``."""
    if _ONEDNN_LINEAR is not None and not torch.is_grad_enabled() and rows.dtype == torch.float32:
        return _ONEDNN_LINEAR(rows, weight, bias, "none", [], "")
    return F.linear(rows, weight, bias)


def _scan_lines(
    lines: torch.Tensor, clean: torch.Tensor, line: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Attention of each query over the clean keys before / after it in its line.

    lines: (B, R, C, L) features (a view); clean: (B, R, L) bool keys;
    queries given by ``line`` (b * R + r, non-decreasing) and ``pos`` (in the
    line), their results to be multiplied by ``scale`` (N,). Returns ``keep``
    (N,) bool, the queries whose line has a clean key (the others' results
    are zeros), and ``[backward, forward]`` for those, each (kept, C), as
    ``reference._scan_rows`` computes them (zeros where there is no key).
    Only the lines holding a query and a clean key are scored, and in them
    only the queries against the clean keys: ``(lines, queries, keys)``
    scores, so the cost falls as the mask grows denser, too.
    """
    c, length = lines.shape[2:]
    keep = clean.any(dim=-1).flatten()[line]  # the query's line has a clean key
    if not keep.any():
        return keep, [lines.new_zeros(0, c) for _ in range(2)]
    line, pos, scale = line[keep], pos[keep], scale[keep]
    used, per_line = torch.unique_consecutive(line, return_counts=True)
    slot = torch.repeat_interleave(torch.arange(len(used), device=line.device), per_line)
    starts = torch.repeat_interleave(per_line.cumsum(0) - per_line, per_line)
    rank = torch.arange(len(line), device=line.device) - starts  # query's place in its line
    used_b, used_r = used // lines.shape[1], used % lines.shape[1]
    feats, keys = lines[used_b, used_r], clean[used_b, used_r]  # (n, C, L), (n, L)
    queries = feats.new_zeros(len(used), int(per_line.max()), c)  # padded per line
    queries[slot, rank] = feats[slot, :, pos] / math.sqrt(c)
    query_pos = pos.new_full(queries.shape[:2], -1)
    query_pos[slot, rank] = pos
    # Key positions, with `length` (after every query, never attended to) for the
    # keys that do not count. Where many pixels are degraded, each line's clean keys
    # are moved to the front (in order) and only those are scored.
    n_keys = keys.sum(dim=-1)
    j = torch.arange(length, device=line.device)
    if n_keys.max() > COMPACT_KEYS_BELOW * length:  # nearly all clean: compacting costs more
        key_pos, key_feats, n_scored = torch.where(keys, j, length), feats, torch.full_like(n_keys, length)
    else:
        key_pos = torch.argsort((~keys).to(torch.uint8), dim=-1, stable=True)[:, : int(n_keys.max())]
        key_pos = torch.where(j[: key_pos.shape[1]] < n_keys[:, None], key_pos, length)
        key_feats = feats.gather(2, key_pos.clamp_max(length - 1)[:, None].expand(-1, c, -1))  # (n, C, K)
        n_scored = n_keys
    # Does a query have a clean key before / after it? From running counts, O(n L).
    upto = keys.cumsum(dim=-1)[slot, pos]  # clean keys at or before the query
    before = upto - keys[slot, pos].long()
    after = n_keys[slot] - upto
    # A few lines at a time, so that the (lines, Q, K) scores stay in cache, and
    # padded only to the most queries and keys of a line in the chunk.
    step = max(1, ATTENTION_CHUNK // (queries.shape[1] * key_pos.shape[1]))
    attended = [[], []]
    for a in range(0, len(used), step):
        q, k = int(per_line[a : a + step].max()), int(n_scored[a : a + step].max())
        f, kp, qp = key_feats[a : a + step, :, :k], key_pos[a : a + step, None, :k], query_pos[a : a + step, :q, None]
        scores = queries[a : a + step, :q] @ f  # (lines, q, k)
        for chunks, other_side in zip(attended, (kp >= qp, (kp <= qp) | (kp == length))):
            weights = torch.softmax(scores.masked_fill(other_side, -1e9), dim=-1)
            chunks.append(F.pad(weights @ f.transpose(1, 2), (0, 0, 0, queries.shape[1] - q)))  # (lines, Q, C)
    # One gather, scaled by the query's mask value, zero where that side has no key.
    factors = [(scale * (count > 0))[:, None] for count in (before, after)]
    return keep, [torch.cat(chunks)[slot, rank] * factor for chunks, factor in zip(attended, factors)]


def _attended_rows(x: torch.Tensor, mask: torch.Tensor, active: ActiveSet) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``reference.directional_attention`` at the active pixels, as rows: for each of
    ``reference.DIRECTIONS``, ``(at, rows)``: the places among the active pixels
    (``ActiveSet`` order) of the queries that have a clean key in that line, and their
    results ``(len(at), C)`` (every other active pixel's result is zeros)."""
    h, w = x.shape[-2:]
    n, y, xx = active.coords  # raster order: sorted by row
    clean = mask[:, 0] < 0.5
    scale = active.values
    keep, (left, right) = _scan_lines(x.permute(0, 2, 1, 3), clean, n * h + y, xx, scale)
    in_rows = keep.nonzero().flatten()
    by_col = torch.sort(n * w + xx, stable=True)  # keeps y increasing within a column
    keep, (up, down) = _scan_lines(x.permute(0, 3, 1, 2), clean.transpose(1, 2), by_col.values, y[by_col.indices], scale[by_col.indices])
    in_cols = by_col.indices[keep]
    return [(in_rows, left), (in_rows, right), (in_cols, up), (in_cols, down)]


def directional_attention(
    x: torch.Tensor, mask: torch.Tensor, active: ActiveSet | None = None
) -> torch.Tensor:
    """``reference.directional_attention``, over the active queries only."""
    active = ActiveSet(mask) if active is None else active
    b, c, h, w = x.shape
    # Channels-last input: the result's storage is (B, 4, H, W, C), so that each
    # pixel's channels are written in one run and each direction is channels-last too.
    out = x.new_zeros(b, 4, h, w, c).permute(0, 1, 4, 2, 3) if _channels_last(x) else x.new_zeros(b, 4, c, h, w)
    if not active.count:
        return out
    n, y, xx = active.coords
    for direction, (at, rows) in enumerate(_attended_rows(x, mask, active)):
        out[n[at], direction, :, y[at], xx[at]] = rows
    return out


def snl_aggregate(
    x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor, active: ActiveSet | None = None
) -> torch.Tensor:
    """``reference.snl_aggregate`` on the active pixels' rows: no ``(B, 4, C, H, W)``
    attention map is made, and only the active pixels are combined and written."""
    active = ActiveSet(mask) if active is None else active
    if not active.count:
        return x.clone()
    per_pixel = active.pick(weights)  # (N, 4)
    h = x.new_zeros(active.count, x.shape[1])
    for direction, (at, rows) in enumerate(_attended_rows(x, mask, active)):
        h.index_add_(0, at, (rows * per_pixel[at, direction, None]).to(h.dtype))
    if not active.binary:  # a soft mask blends: mask * h + (1 - mask) * x
        h = torch.lerp(active.pick(x), h.to(x.dtype), active.values[:, None].to(x.dtype))
    return active.put(x, h)
