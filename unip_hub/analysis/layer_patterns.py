"""Per-layer attention profile of a ViT: NMI, mean attention distance and a local / hybrid / global label.

Works on a :class:`~unip_hub.models.vit.UnipViT` (the UNIP students and every teacher loaded by
:mod:`unip_hub.hub.teachers`) and on any timm ``VisionTransformer``-like model whose blocks hold a timm
``Attention`` (``blocks[i].attn`` with ``fused_attn`` and ``attn_drop``): for those, fused attention is switched
off during the pass and the post-softmax maps are read by a forward hook on ``attn_drop`` (an identity in eval
mode), so models with register or distillation tokens are profiled as they are, without conversion.
Maps are reduced to statistics layer by layer; at most one layer's (B, heads, N, N) map is alive at a time
(UnipViT path).

Pattern bands (NMI of the layer, averaged over heads and images), constants below:

* ``local``  : NMI >= 0.20 (Gaussian-local maps with sigma <= 2 patches on a 14 x 14 grid score >= 0.275);
* ``hybrid`` : 0.05 <= NMI < 0.20 (holds the paper's target 0.09 and its stable range 0.06-0.12);
* ``global`` : NMI < 0.05 (every query attends to nearly the same keys; uniform attention is 0).

Layers are numbered from 1 as in the paper (``layer = 18`` = output of the 18th block of MAE-L).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from unip_hub.analysis.distance import mean_attention_distance
from unip_hub.analysis.nmi import attention_nmi

LOCAL_MIN_NMI = 0.20
"""Layers with NMI at or above this are ``local``."""
GLOBAL_MAX_NMI = 0.05
"""Layers with NMI below this are ``global``; between the two: ``hybrid``."""
DEFAULT_TARGET_NMI = 0.09
"""NMI-HAD's target: distil the teacher layer whose NMI is closest to it (stable for 0.06-0.12)."""

# callback(layer 0-based, attention (B, H, N, N), grid (h, w), number of prefix tokens)
AttentionCallback = Callable[[int, torch.Tensor, tuple[int, int], int], None]


def classify_pattern(nmi: float) -> str:
    """``"local"``, ``"hybrid"`` or ``"global"`` for a layer's NMI (bands in the module docstring)."""
    if nmi >= LOCAL_MIN_NMI:
        return "local"
    return "hybrid" if nmi >= GLOBAL_MAX_NMI else "global"


@dataclass
class LayerPattern:
    """Statistics of one layer, averaged over images (and heads)."""

    layer: int  # 1-based
    heads: int
    nmi: float
    nmi_std: float
    distance: float  # mean attention distance, in patches
    pattern: str
    nmi_per_head: list[float] = field(default_factory=list)


@dataclass
class AttentionProfile:
    """The per-layer profile of one model over a set of images."""

    model: str
    num_images: int
    image_size: tuple[int, int]
    layers: list[LayerPattern]

    @property
    def nmi(self) -> list[float]:
        return [r.nmi for r in self.layers]

    @property
    def distance(self) -> list[float]:
        return [r.distance for r in self.layers]

    def to_dict(self) -> dict:
        """JSON-ready dict with the bands used."""
        return {"model": self.model, "num_images": self.num_images, "image_size": list(self.image_size),
                "thresholds": {"local_min_nmi": LOCAL_MIN_NMI, "global_max_nmi": GLOBAL_MAX_NMI},
                "layers": [asdict(r) for r in self.layers]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per layer: layer, heads, nmi, nmi_std, distance, pattern."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "heads", "nmi", "nmi_std", "distance", "pattern"])
        for r in self.layers:
            w.writerow([r.layer, r.heads, f"{r.nmi:.6f}", f"{r.nmi_std:.6f}", f"{r.distance:.6f}", r.pattern])
        return buf.getvalue()

    @classmethod
    def from_dict(cls, d: dict) -> AttentionProfile:
        return cls(d["model"], int(d["num_images"]), tuple(d["image_size"]), [LayerPattern(**r) for r in d["layers"]])


def _is_unip(model: nn.Module) -> bool:
    from unip_hub.models.vit import UnipViT

    return isinstance(model, UnipViT)


def _stream_unip(model: nn.Module, x: torch.Tensor, fn: AttentionCallback, wanted: set[int]) -> None:
    tokens, grid = model.prepare_tokens(x)  # (B, 1 + N, C)
    for i in range(max(wanted) + 1):
        blk = model.blocks[i]
        if i in wanted:
            tokens, logits = blk.forward_with_logits(tokens)
            fn(i, logits.float().softmax(dim=-1), grid, model.num_prefix_tokens)
        else:
            tokens = blk(tokens)


def _stream_timm(model: nn.Module, x: torch.Tensor, fn: AttentionCallback, wanted: set[int]) -> None:
    blocks = getattr(model, "blocks", None)
    attns = [getattr(b, "attn", None) for b in blocks] if blocks is not None else []
    if not attns or not all(hasattr(a, "fused_attn") and hasattr(a, "attn_drop") for a in attns):
        raise TypeError(f"{type(model).__name__} is neither a UnipViT nor a timm ViT with timm Attention blocks "
                        "(blocks[i].attn.fused_attn / attn_drop); convert it to a UnipViT to profile it")
    patch = model.patch_embed.patch_size
    grid = (x.shape[-2] // patch[0], x.shape[-1] // patch[1])
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    seen: list[int] = []

    def hook(i: int):
        def _h(_mod, _inp, out):
            seen.append(i)
            fn(i, out.float(), grid, prefix)
        return _h

    handles, saved = [], [a.fused_attn for a in attns]
    try:
        for i in sorted(wanted):
            attns[i].fused_attn = False
            handles.append(attns[i].attn_drop.register_forward_hook(hook(i)))
        model.forward_features(x)
    finally:
        for h in handles:
            h.remove()
        for a, f in zip(attns, saved):
            a.fused_attn = f
    if sorted(set(seen)) != sorted(wanted):
        raise RuntimeError(f"captured attention of layers {sorted(set(seen))} instead of {sorted(wanted)}: this timm "
                           "model does not apply attn_drop to explicit attention maps")


def stream_attention(model: nn.Module, x: torch.Tensor, fn: AttentionCallback,
                     layers: Sequence[int] | None = None) -> None:
    """Runs ``model`` on ``x`` and calls ``fn(layer0, attn, grid, num_prefix)`` for each 0-based layer in ``layers``.

    ``attn`` is the post-softmax map (B, heads, N, N) in float32, valid only during the call.
    """
    depth = len(model.blocks)
    wanted = set(range(depth)) if layers is None else {i % depth for i in layers}
    if not wanted:
        raise ValueError("no layers requested")
    with torch.no_grad():
        (_stream_unip if _is_unip(model) else _stream_timm)(model, x, fn, wanted)


def attention_profile(model: nn.Module, batches: torch.Tensor | Iterable[torch.Tensor], name: str | None = None,
                      device: torch.device | str | None = None) -> AttentionProfile:
    """NMI, attention distance and pattern of every layer of ``model``, averaged over all images.

    Args:
        model: A UnipViT or a timm ViT (put in eval mode here).
        batches: One (B, 3, H, W) tensor or an iterable of them (already normalised for the model).
        name: Model name recorded in the profile.
        device: Where to run; default: the model's device.
    """
    model.eval()
    device = device or next(model.parameters()).device
    batches = [batches] if isinstance(batches, torch.Tensor) else batches
    nmis: dict[int, list[torch.Tensor]] = {}
    dists: dict[int, list[torch.Tensor]] = {}
    size: tuple[int, int] | None = None

    def collect(i: int, attn: torch.Tensor, grid: tuple[int, int], prefix: int) -> None:
        nmis.setdefault(i, []).append(attention_nmi(attn, reduce_heads=False).cpu())  # (B, H)
        dists.setdefault(i, []).append(mean_attention_distance(attn, grid, prefix).cpu())  # (B,)

    for x in batches:
        if x.ndim != 4:
            raise ValueError(f"expected image batches (B, C, H, W), got {tuple(x.shape)}")
        size = size or (int(x.shape[-2]), int(x.shape[-1]))
        stream_attention(model, x.to(device), collect)
    if not nmis:
        raise ValueError("no images given")
    rows = []
    for i in sorted(nmis):
        per_head = torch.cat(nmis[i])  # (images, H)
        per_image = per_head.mean(dim=1)
        nmi = float(per_image.mean())
        std = float(per_image.std()) if per_image.numel() > 1 else 0.0
        rows.append(LayerPattern(layer=i + 1, heads=per_head.shape[1], nmi=nmi, nmi_std=std,
                                 distance=float(torch.cat(dists[i]).mean()), pattern=classify_pattern(nmi),
                                 nmi_per_head=[round(float(v), 6) for v in per_head.mean(dim=0)]))
    return AttentionProfile(name or type(model).__name__, int(per_head.shape[0]), size, rows)


def select_distill_layer(profile: AttentionProfile | Sequence[float], target: float = DEFAULT_TARGET_NMI) -> int:
    """The 1-based layer whose NMI is closest to ``target`` (NMI-HAD's rule; ties go to the shallower layer).

    Args:
        profile: An :class:`AttentionProfile` or the NMI of each layer in order.
        target: Target NMI (the paper uses 0.09; results are stable for 0.06-0.12).
    """
    values = profile.nmi if isinstance(profile, AttentionProfile) else [float(v) for v in profile]
    if not values:
        raise ValueError("empty profile: no layers to choose from")
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target NMI must be in [0, 1], got {target}")
    best = min(range(len(values)), key=lambda i: (abs(values[i] - target), i))
    return best + 1


def query_attention(model: nn.Module, x: torch.Tensor, layers: Sequence[int],
                    queries: Sequence[tuple[float, float]]) -> dict[int, torch.Tensor]:
    """Where chosen patch queries look: head-averaged attention over the patch grid.

    Args:
        model: A UnipViT or timm ViT.
        x: One normalised image batch (B, 3, H, W).
        layers: 1-based layers.
        queries: Query points as (row, col) fractions of the image in [0, 1].

    Returns:
        {layer: (B, len(queries), h, w)} attention of each query over the patch grid (prefix keys dropped).
    """
    out: dict[int, torch.Tensor] = {}
    depth = len(model.blocks)
    bad = [lay for lay in layers if not 1 <= lay <= depth]
    if bad:
        raise ValueError(f"layers {bad} out of range 1..{depth}")

    def grab(i: int, attn: torch.Tensor, grid: tuple[int, int], prefix: int) -> None:
        h, w = grid
        idx = [prefix + min(int(r * h), h - 1) * w + min(int(c * w), w - 1) for r, c in queries]
        a = attn.mean(dim=1)[:, idx, prefix:]  # (B, Q, h*w)
        out[i + 1] = a.reshape(a.shape[0], len(idx), h, w).cpu()

    model.eval()
    stream_attention(model, x, grab, [lay - 1 for lay in layers])
    return out
