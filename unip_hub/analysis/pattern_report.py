"""The attention-pattern report of ``unip attention-patterns``: profile a ViT on a folder, choose the layer, write
``attention_patterns.{json,csv,png}`` and query-attention figures under ``maps/``.

>>> summary = attention_patterns_report("unip_vit_small.mae_large", "thermal/", "out/")
>>> summary["selected_layer"]      # 1-based layer closest to the target NMI
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unip_hub.analysis.layer_patterns import DEFAULT_TARGET_NMI, AttentionProfile
from unip_hub.utils.atomic import write_text_atomic

__all__ = ["DEFAULT_QUERIES", "attention_patterns_report", "format_profile"]

DEFAULT_QUERIES: tuple[tuple[float, float], ...] = ((0.5, 0.5), (0.25, 0.25), (0.75, 0.7))
"""Query points (row, col fractions) drawn in the attention-map figures."""


def _load_model(model: str, arch: str | None, last_heads: int | str | None, pretrained: bool, drop_dist_token: bool,
                img_size: int):
    from unip_hub.checkpoints import CheckpointError
    from unip_hub.hub.teachers import load_teacher

    if last_heads is not None and last_heads != "distilled":
        last_heads = int(last_heads)
    try:
        return load_teacher(model, arch=arch, last_heads=last_heads, pretrained=pretrained,
                        drop_dist_token=drop_dist_token)
    except (CheckpointError, ValueError):
        if not model.startswith("timm:"):
            raise
    import timm  # a timm model the UNIP ViT cannot express (register tokens, ...) is profiled as it is

    return timm.create_model(model[len("timm:"):], pretrained=pretrained, num_classes=0, img_size=img_size)


def format_profile(profile: AttentionProfile, selected: int) -> str:
    """The per-layer table printed by the CLI (layer, heads, NMI, distance, pattern, the selected layer marked)."""
    lines = [f"{'layer':>5} {'heads':>5} {'NMI':>8} {'distance':>9}  pattern"]
    for r in profile.layers:
        mark = "  <- closest to target" if r.layer == selected else ""
        lines.append(f"{r.layer:>5} {r.heads:>5} {r.nmi:>8.4f} {r.distance:>9.3f}  {r.pattern}{mark}")
    return "\n".join(lines)


def _write_maps(model, x, grays, files: Sequence[Path], layers: list[int], out: Path, num_maps: int,
                device: str) -> int:
    from unip_hub.analysis.layer_patterns import query_attention
    from unip_hub.analysis.plots import plot_query_attention

    n_show = min(num_maps, len(files))
    maps = query_attention(model, x[:n_show].to(device), layers, DEFAULT_QUERIES)
    for i in range(n_show):
        plot_query_attention(grays[i], {k: v[i] for k, v in maps.items()}, DEFAULT_QUERIES,
                             out / "maps" / f"{i:02d}_{files[i].stem}.png", title=files[i].name)
    return n_show


def attention_patterns_report(
    model: str,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    arch: str | None = None,
    last_heads: int | str | None = None,
    img_size: int = 224,
    max_images: int = 64,
    batch_size: int = 8,
    num_maps: int = 3,
    target: float = DEFAULT_TARGET_NMI,
    device: str = "cpu",
    pretrained: bool = True,
    drop_dist_token: bool = False,
    log: Callable[[str], Any] | None = print,
) -> dict[str, Any]:
    """Profiles the attention of every layer of ``model`` on ``images`` and writes the report files.

    Args:
        model: Registry name (``unip_vit_small.mae_large``), checkpoint file or folder, or ``timm:NAME``.
        images: Folder of images (searched recursively).
        out: Output folder.
        arch: Architecture of a checkpoint file (default inferred).
        last_heads: Last-block heads of a distilled student: an int or ``"distilled"``.
        img_size: Square input size, a multiple of 16.
        max_images: Images used for the statistics.
        batch_size: Images per forward pass.
        num_maps: Images drawn with query-attention maps.
        target: Target NMI of the layer choice.
        device: Torch device.
        pretrained: ``timm:`` models: download their weights (``False`` for tests).
        drop_dist_token: Accept distilled DeiT files.
        log: Where the table and the summary line go (``None``: silent).

    Returns:
        The JSON summary (profile, target, selected layer, image paths).
    """
    import torch

    from unip_hub.analysis.image_batch import list_images, load_gray_batch
    from unip_hub.analysis.layer_patterns import attention_profile, select_distill_layer
    from unip_hub.analysis.plots import plot_profile

    out = Path(out)
    files = list_images(images, max_images)
    x, grays = load_gray_batch(files, img_size)
    net = _load_model(model, arch, last_heads, pretrained, drop_dist_token, img_size).to(device).eval()
    profile = attention_profile(net, list(torch.split(x, batch_size)), name=model, device=device)
    layer = select_distill_layer(profile, target)
    summary = profile.to_dict() | {"target_nmi": target, "selected_layer": layer, "images": [str(f) for f in files]}
    write_text_atomic(json.dumps(summary, indent=2), out / "attention_patterns.json")
    write_text_atomic(profile.to_csv(), out / "attention_patterns.csv")
    plot_profile(profile, out / "attention_patterns.png", target=target, selected=layer)
    depth = len(profile.layers)
    n_show = _write_maps(net, x, grays, files, sorted({1, max(1, depth // 2), layer, depth}), out, num_maps, device)
    if log is not None:
        log(format_profile(profile, layer))
        log(f"wrote {out}/attention_patterns.{{csv,json,png}} and {n_show} attention-map figures in {out}/maps")
    return summary
