"""Foreign ViTs as :class:`UnipViT`: NMI-HAD teachers (MAE, iBOT, DINO, DeiT, timm) and models to analyse.

Sources understood by :func:`load_teacher` (also importable as ``load_vit``):

* ``timm:NAME``: ``timm.create_model(NAME, pretrained=...)``, converted to a UnipViT (vanilla ViTs only; the
  weights are downloaded by timm when ``pretrained``).
* a registry name: ``unip_vit_small.mae_large`` (released weights) or a bare architecture (its default weights).
* a file or Hugging Face folder: read safely, converted by the function of its layout
  (:mod:`unip_hub.checkpoints.teacher_layouts`), shapes inferred from the weights.

With ``layer=L`` the model is built with only ``L`` blocks and every weight up to that block must be in the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unip_hub.checkpoints import read_checkpoint
from unip_hub.checkpoints.read import CheckpointError
from unip_hub.checkpoints.teacher_layouts import infer_vit_spec, load_teacher_state_dict, teacher_state_dict
from unip_hub.models.vit import ARCHS, UnipViT

TIMM_PREFIX = "timm:"
# name -> (embed_dim, depth, heads); head dim 64 throughout
VIT_SPECS: dict[str, tuple[int, int, int]] = {
    "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12), "vit_large": (1024, 24, 16),
    "vit_huge": (1280, 32, 16),
    **{k: (s.embed_dim, s.depth, s.num_heads) for k, s in ARCHS.items()},
}


def _spec_heads(arch: str | None, spec: dict[str, Any], source: str) -> int:
    width, depth = spec["embed_dim"], spec["depth"]
    if arch is None:
        if width % 64:
            raise ValueError(f"{source}: width {width} is not a multiple of 64; pass arch= to give the head count")
        return width // 64
    if arch not in VIT_SPECS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(VIT_SPECS)} or None to infer it")
    w, d, h = VIT_SPECS[arch]
    if (w, d) != (width, depth):
        raise CheckpointError(f"{source} holds a ViT of width {width} and depth {depth}, not {arch} ({w} wide, {d} "
                              "deep); pass the right arch (or None to infer it)")
    return h


def _check_layer(layer: int | None, depth: int, source: str) -> int:
    if layer is None:
        return depth
    if not 1 <= layer <= depth:
        raise ValueError(f"layer {layer} is out of range for {source} with {depth} blocks (layers are 1-based)")
    return layer


def _from_timm(name: str, layer: int | None, pretrained: bool) -> UnipViT:
    import timm

    from unip_hub.checkpoints.teacher_layouts import convert_timm

    net = timm.create_model(name, pretrained=pretrained, num_classes=0)
    if getattr(net, "cls_token", None) is None or not hasattr(net, "blocks"):
        raise ValueError(f"timm model {name!r} is not a class-token ViT; profile it with attention_profile instead")
    sd = convert_timm(net.state_dict())
    spec = infer_vit_spec(sd)
    heads = net.blocks[0].attn.num_heads
    layer = _check_layer(layer, spec["depth"], f"timm:{name}")
    model = _build(spec, heads, layer)
    load_teacher_state_dict(model, sd, layer, source=f"timm:{name}")
    return model


def _build(spec: dict[str, Any], heads: int, depth: int, last_heads: int | None = None) -> UnipViT:
    return UnipViT(img_size=spec["img_size"], patch_size=spec["patch_size"], in_chans=spec["in_chans"],
                   embed_dim=spec["embed_dim"], depth=depth, num_heads=heads, last_heads=last_heads,
                   qkv_bias=spec["qkv_bias"], init_values=1.0 if spec["layer_scale"] else None)


def _recorded_last_heads(path: Path, obj: dict) -> int | None:
    """The distilled head count: checkpoint args, registry, converted config.json, file name (hub.backbones)."""
    from unip_hub.hub.backbones import distillation_of
    from unip_hub.hub.registry import find_entry_by_filename
    from unip_hub.hub.resolve import ResolvedWeights, read_folder_config

    entry = find_entry_by_filename(path.name) if path.is_file() else None
    record = distillation_of(ResolvedWeights(path, entry, read_folder_config(path)), obj)
    return record.last_heads if record is not None else None


def load_teacher(source: str | os.PathLike, arch: str | None = None, layer: int | None = None, *,
                 last_heads: int | str | None = None, pretrained: bool = True, fmt: str = "auto",
                 drop_dist_token: bool = False) -> UnipViT:
    """A frozen UnipViT in eval mode from a teacher/student file, a registry name or ``timm:NAME``.

    For NMI-HAD pass ``layer`` (MAE-L 18, iBOT-L 21, DINO-B 9; see
    :func:`unip_hub.analysis.select_distill_layer`): the teacher is built with exactly that many blocks.

    Args:
        source: An MAE / iBOT / DINO / DeiT / UNIP checkpoint file or folder, a registry name, or ``timm:NAME``
            (see the module docstring).
        arch: ``vit_large`` (MAE-L, iBOT-L: 16 heads), ``vit_base`` (DINO-B: 12 heads), ... (or a ``unip_vit_*``
            name): checked against the weights; ``None`` infers the shape (heads = width / 64). Ignored for
            ``timm:`` names.
        layer: Keep blocks 1..``layer`` only (1-based); ``None`` keeps all.
        last_heads: Head count of the last block for distilled students (``"distilled"`` = recorded value); not
            allowed together with ``layer``.
        pretrained: For ``timm:`` names, download timm's weights (``False``: random, for tests).
        fmt: Teacher file layout, see :data:`~unip_hub.checkpoints.teacher_layouts.TEACHER_FORMATS`, or ``"auto"``.
        drop_dist_token: Accept distilled DeiT files by removing their distillation token.

    Raises:
        unip_hub.checkpoints.CheckpointError: the file lacks weights of a block up to ``layer`` (named), holds
            unexpected keys, or does not match ``arch``.
    """
    return _load(source, arch, layer, last_heads, pretrained, fmt, drop_dist_token).requires_grad_(False).eval()


load_vit = load_teacher
"""The same function under its earlier name (used by the attention analysis)."""


def _load(source: str | os.PathLike, arch: str | None, layer: int | None, last_heads: int | str | None,
          pretrained: bool, fmt: str, drop_dist_token: bool) -> UnipViT:
    text = os.fspath(source)
    if text.startswith(TIMM_PREFIX):
        return _from_timm(text[len(TIMM_PREFIX):], layer, pretrained).eval()
    path = Path(text).expanduser()
    if not path.exists():
        base = text.split(".")[0]
        if base in ARCHS and not any(c in text for c in "/\\"):
            from unip_hub.hub.backbones import create_backbone

            tag = text.partition(".")[2] or None
            model = create_backbone(base, weights=tag, pretrained=tag is None, last_heads=last_heads or "distilled")
            if layer is not None:
                model.prune_intermediate_layers([_check_layer(layer, model.depth, text) - 1], prune_norm=True)
            return model.eval()
        raise FileNotFoundError(f"{text} is neither a file/folder, a registry name ({sorted(ARCHS)}[.tag]) nor "
                                "timm:NAME")
    obj = read_checkpoint(path)
    sd = teacher_state_dict(obj, fmt, drop_dist_token=drop_dist_token)
    spec = infer_vit_spec(sd)
    heads = _spec_heads(arch, spec, str(path))
    depth = _check_layer(layer, spec["depth"], str(path))
    if last_heads == "distilled":
        last_heads = _recorded_last_heads(path, obj)
        if last_heads is None:
            raise ValueError(f"{path} does not record a distilled head count; pass last_heads=<int>")
    if last_heads is not None and layer is not None and layer != spec["depth"]:
        raise ValueError("last_heads applies to the last block of a full model, not to a truncated teacher")
    model = _build(spec, heads, depth, last_heads)
    load_teacher_state_dict(model, sd, depth, source=str(path))
    return model.eval()
