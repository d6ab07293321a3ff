"""Builders of UNIP segmenters: backbone + LL-FPN (or multi-layer FPN) + UPerNet/FCN heads, or a linear probe.

>>> seg = create_segmenter("unip_vit_small", num_classes=21, weights="mae_large")          # to fine-tune
>>> seg = create_segmenter("unip_vit_small", num_classes=21, checkpoint="iter_14400.pth")  # mmseg or ours
>>> seg = load_segmenter("iter_14400.pth")     # arch / classes / head read from the file

Modes (as timm and ``from_pretrained``): built to be trained -> training mode; loaded from a trained segmenter
checkpoint (``load_segmenter``, ``create_segmenter(checkpoint=...)``) -> eval mode.

Released pre-trained backbones contain the final ``norm.*``; the segmenter keeps that LayerNorm (so the strict
load is complete) but never uses it: its features are taken before the final norm, as in the research code.
Segmenter checkpoints may or may not contain ``backbone.norm.*``; both load (the unused norm then stays at init).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from unip_hub.checkpoints import CheckpointError, checkpoint_filter_fn, load_state_dict_strict
from unip_hub.checkpoints.segmenter_files import SegmenterCheckpoint
from unip_hub.constants import SEGMENTER_HEADS as HEADS
from unip_hub.constants import SEGMENTER_NECKS as NECKS
from unip_hub.constants import SLIDE_CROP, VIT_SIZES
from unip_hub.heads import FCNHead, LinearHead, UPerHead
from unip_hub.hub.backbones import WeightsArg, create_backbone
from unip_hub.hub.registry import default_weights
from unip_hub.models.segmenter import Segmenter
from unip_hub.models.vit import ARCHS, arch_from_shape
from unip_hub.necks import LastLayerFPN, MultiLayerFPN

# The UNIP fine-tuning backbone (reference section 4): a trainable 32x32 position grid at the 512 crop, drop-path
# 0.1, layer scale 1.0. The keyword defaults of create_segmenter and every adapter's backbone come from here. The
# training crop is the sliding-window crop of the evaluation (mmseg's one crop_size).
FINETUNE_IMG_SIZE, FINETUNE_DROP_PATH, FINETUNE_LAYER_SCALE = SLIDE_CROP, 0.1, 1.0
FINETUNE_DEFAULTS: dict[str, Any] = dict(img_size=FINETUNE_IMG_SIZE, drop_path_rate=FINETUNE_DROP_PATH,
                                         init_values=FINETUNE_LAYER_SCALE, pos_embed_trainable=True)
_MULTI_LAYERS = {12: [3, 5, 7, 11], 24: [7, 11, 15, 23]}
# keys a segmenter checkpoint may lack: the unused final norm, and BN counters of old PyTorch versions
_ALLOW_MISSING = [r"backbone\.norm\.(weight|bias)", r".*\.num_batches_tracked"]


def default_layers(depth: int, head: str, neck: str) -> list[int]:
    """Blocks read by the segmenter: the last one for LL-FPN; [3, 5, 7, 11] (ViT-L [7, 11, 15, 23]) otherwise."""
    if head == "upernet" and neck == "last":
        return [depth - 1]
    if depth not in _MULTI_LAYERS:
        raise ValueError(f"no default blocks for a {depth}-block backbone with head={head!r}, neck={neck!r}; "
                         "pass layers=[four 0-based block indices]")
    return list(_MULTI_LAYERS[depth])


def _check_choices(head: str, neck: str) -> None:
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if neck not in NECKS:
        raise ValueError(f"neck must be one of {NECKS}, got {neck!r}")


def _assemble(backbone: nn.Module, *, num_classes: int, head: str, neck: str, aux: bool, layers: Sequence[int] | None,
              class_names: Sequence[str] | None, palette: Sequence[Sequence[int]] | None) -> Segmenter:
    c = backbone.embed_dim
    layers = list(layers) if layers is not None else default_layers(backbone.depth, head, neck)
    if head == "linear":  # backbone maps straight into one 1x1 conv
        return Segmenter(backbone, None, LinearHead([c] * len(layers), num_classes), None, layers,
                         num_classes=num_classes, class_names=class_names, palette=palette)
    fpn = LastLayerFPN(c) if neck == "last" else MultiLayerFPN(c)
    decode = UPerHead(fpn.out_channels, channels=c, num_classes=num_classes)
    auxiliary = FCNHead(fpn.out_channels[2], num_classes, channels=256, num_convs=1, in_index=2) if aux else None
    return Segmenter(backbone, fpn, decode, auxiliary, layers, num_classes=num_classes, class_names=class_names,
                     palette=palette)


def _load_segmenter_state(seg: Segmenter, sd: Mapping, source: str, keep_aux: bool) -> None:
    sd = dict(sd)
    if not keep_aux:
        sd = {k: v for k, v in sd.items() if not k.startswith("auxiliary_head.")}
    bb = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    bb = checkpoint_filter_fn(bb, seg.backbone)  # pos_embed grid of another crop size, in_chans
    sd.update({"backbone." + k: v for k, v in bb.items()})
    load_state_dict_strict(seg, sd, source=source, allow_missing=_ALLOW_MISSING)


def _checkpoint_settings(ckpt: SegmenterCheckpoint, num_classes: int, head: str, neck: str
                         ) -> tuple[dict, dict[str, Any], dict[str, Any]]:
    """Checks a read segmenter checkpoint against the requested build; returns (state dict, meta, found)."""
    sd, meta, found, checkpoint = ckpt.state_dict, ckpt.meta, ckpt.found, ckpt.path
    if found.get("num_classes") not in (None, num_classes):
        raise CheckpointError(f"{checkpoint} was trained for {found['num_classes']} classes "
                              f"(decode_head.conv_seg), not num_classes={num_classes}")
    if found.get("head") != head:
        raise CheckpointError(f"{checkpoint} holds a {found.get('head')!r} head, not head={head!r}")
    if meta.get("neck", neck) != neck or meta.get("head", head) != head:
        raise CheckpointError(f"{checkpoint} was saved with head={meta.get('head')!r}, neck={meta.get('neck')!r}, "
                              f"not head={head!r}, neck={neck!r}")
    return sd, meta, found


def _labels_from_meta(meta: Mapping[str, Any], num_classes: int, class_names: Sequence[str] | None,
                      palette: Sequence[Sequence[int]] | None) -> tuple[Any, Any]:
    """Class names and palette: the caller's, else the checkpoint meta's when they cover ``num_classes``."""
    if class_names is None and len(meta.get("class_names") or ()) == num_classes:
        class_names = meta["class_names"]
    if palette is None and len(meta.get("palette") or ()) >= num_classes:
        palette = meta["palette"]
    return class_names, palette


def create_segmenter(
    arch: str,
    *,
    num_classes: int,
    head: str = "upernet",
    neck: str = "last",
    weights: WeightsArg = None,
    checkpoint: str | os.PathLike | SegmenterCheckpoint | None = None,
    img_size: int = FINETUNE_IMG_SIZE,
    aux: bool | None = None,
    drop_path_rate: float = FINETUNE_DROP_PATH,
    init_values: float | None = FINETUNE_LAYER_SCALE,
    freeze_backbone: bool | None = None,
    class_names: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    layers: Sequence[int] | None = None,
    **backbone_kwargs: Any,
) -> Segmenter:
    """Builds a UNIP segmenter, optionally with pre-trained backbone ``weights`` or a full segmenter ``checkpoint``.

    The mode follows the convention of timm and ``from_pretrained``: a model built to be trained (no
    ``checkpoint``) is returned in **training** mode, like ``timm.create_model``; a trained segmenter loaded from a
    ``checkpoint`` is returned in **eval** mode, ready for inference (call ``.train()`` to fine-tune it further).

    Args:
        arch: Backbone size, ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``.
        num_classes: Classes K (SODA 21, MFNet 9, SCUT-Seg 10).
        head: ``"upernet"`` (LL-FPN + UPerNet + FCN auxiliary, the UNIP fine-tuning model) or ``"linear"`` (probe).
        neck: ``"last"`` (LL-FPN on the last block) or ``"multi"`` (blocks [3, 5, 7, 11]); UPerNet only.
        weights: Backbone weights (registry tag, :class:`Weights`, path); their 14x14 position embedding is
            resized to the ``img_size`` grid and the layer-scale gammas start at ``init_values``.
        checkpoint: A segmenter checkpoint, ours or mmseg's (research code), loaded strictly; excludes ``weights``
            (a path, or a :class:`~unip_hub.checkpoints.segmenter_files.SegmenterCheckpoint` already read).
        img_size: Crop size the trainable position embedding is stored at (512 -> 32x32).
        aux: Build the FCN auxiliary head; ``None`` = yes, or as in ``checkpoint`` (``False`` drops the file's).
        drop_path_rate: Stochastic depth of the backbone.
        init_values: Layer-scale initial value (``None``: no layer scale; the research code uses 1.0).
        freeze_backbone: Linear probing (no backbone gradients, backbone in eval mode); ``None`` = only for
            ``head="linear"``.
        class_names: Names of the K classes (default: from the checkpoint's meta, if any).
        palette: K RGB colours (default: from the checkpoint's meta, if any).
        layers: Override the blocks read (see :func:`default_layers`).
        **backbone_kwargs: Further :class:`~unip_hub.models.vit.UnipViT` options (``in_chans``, ``depth``...).

    Raises:
        CheckpointError: the checkpoint is unsafe, unreadable or does not fit (names the keys).
    """
    _check_choices(head, neck)
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    if weights is not None and checkpoint is not None:
        raise ValueError("pass weights= (pre-trained backbone to fine-tune) or checkpoint= (a trained segmenter), "
                         "not both")
    sd, meta, found = None, {}, {}
    if checkpoint is not None:
        checkpoint = SegmenterCheckpoint.read(checkpoint)
        sd, meta, found = _checkpoint_settings(checkpoint, num_classes, head, neck)
    aux = bool(found.get("aux", True) if aux is None else aux) and head != "linear"
    layers = meta.get("layers") if layers is None else layers
    class_names, palette = _labels_from_meta(meta, num_classes, class_names, palette)
    backbone = create_backbone(arch, weights=weights, img_size=img_size, drop_path_rate=drop_path_rate,
                               init_values=init_values, pos_embed_trainable=True, **backbone_kwargs)
    seg = _assemble(backbone, num_classes=num_classes, head=head, neck=neck, aux=aux, layers=layers,
                    class_names=class_names, palette=palette)
    if sd is not None:
        _load_segmenter_state(seg, sd, source=checkpoint.path, keep_aux=aux)
    if meta.get("input_scaling"):  # how its inputs were scaled in training (older files: the default)
        seg.input_scaling = str(meta["input_scaling"])
    if meta.get("counts_to_celsius"):  # the counts calibration it was trained with, beside the scaling
        seg.counts_to_celsius = [float(v) for v in meta["counts_to_celsius"]]
    if freeze_backbone if freeze_backbone is not None else head == "linear":
        seg.freeze_backbone(True)
    seg.config = {"arch": arch, "num_classes": num_classes, "head": head, "neck": neck, "img_size": img_size,
                  "layers": list(seg.layers), "aux": aux, "in_chans": backbone.in_chans,
                  "init_values": init_values, "backbone_kwargs": dict(backbone_kwargs)}
    return seg.train(sd is None)


def _load_kwargs(checkpoint: str | os.PathLike, meta: Mapping[str, Any], found: Mapping[str, Any], arch: str,
                 kwargs: dict[str, Any]) -> dict[str, Any]:
    """``create_segmenter`` keywords of a checkpoint: the caller's, then the meta's, then the weights'."""
    kwargs = dict(kwargs)
    kwargs.setdefault("img_size", meta.get("img_size") or found.get("img_size", FINETUNE_IMG_SIZE))
    if "init_values" in meta:
        kwargs.setdefault("init_values", meta["init_values"])
    backbone_kwargs = dict(meta.get("backbone_kwargs") or {})
    if "in_chans" in found:
        backbone_kwargs.setdefault("in_chans", found["in_chans"])
    if arch in ARCHS and found.get("depth") not in (None, ARCHS[arch].depth):
        backbone_kwargs.setdefault("depth", found["depth"])
    for key, value in backbone_kwargs.items():
        kwargs.setdefault(key, value)
    width = kwargs.get("embed_dim", ARCHS[arch].embed_dim if arch in ARCHS else None)
    if found.get("embed_dim") not in (None, width):
        raise CheckpointError(f"{checkpoint} has width {found['embed_dim']} but {arch} is {width} wide; pass the "
                              "matching arch (or embed_dim=/num_heads= for a custom width)")
    return kwargs


def load_segmenter(
    checkpoint: str | os.PathLike | SegmenterCheckpoint,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    head: str | None = None,
    neck: str | None = None,
    **kwargs: Any,
) -> Segmenter:
    """A trained segmenter from its checkpoint alone, in eval mode; settings come from the file's meta, then from
    its weights.

    ``arch`` and ``num_classes`` are needed only when neither the meta nor the weights tell them (a custom width).
    The neck type cannot be read from mmseg weights: they load as ``"last"`` (LL-FPN, UNIP's model) unless
    ``neck="multi"`` is passed. Like ``from_pretrained``, the model is returned in eval mode; call ``.train()``
    to fine-tune it further.
    """
    checkpoint = SegmenterCheckpoint.read(checkpoint)  # read once; create_segmenter takes the result
    meta, found = checkpoint.meta, checkpoint.found
    arch = arch or meta.get("arch") or arch_from_shape(found.get("embed_dim"))
    num_classes = num_classes or meta.get("num_classes") or found.get("num_classes")
    if arch is None or num_classes is None:
        raise ValueError(f"cannot tell the architecture/number of classes of {checkpoint.path}; pass arch= and "
                         "num_classes= (CLI: --arch, --num-classes)")
    kwargs = _load_kwargs(checkpoint.path, meta, found, arch, kwargs)
    return create_segmenter(arch, num_classes=int(num_classes), head=head or meta.get("head") or found["head"],
                            neck=neck or meta.get("neck") or "last", checkpoint=checkpoint, **kwargs)


def _upernet_entry(arch: str) -> Callable[..., Segmenter]:
    """``unip_<letter>_upernet``: LL-FPN + UPerNet on ``arch``, its released backbone weights by default."""
    letter, default = VIT_SIZES[arch].letter, default_weights(arch)

    def entry(*, num_classes: int, pretrained: bool = default is not None, weights: WeightsArg = default,
              **kwargs: Any) -> Segmenter:
        if default is None and pretrained and weights is None:
            raise ValueError(f"UNIP-{letter} has no released weights; use pretrained=False or pass "
                             "weights=<path to your file>")
        load = pretrained if default is not None else pretrained or weights is not None
        if kwargs.get("checkpoint") is not None:  # a trained segmenter brings its backbone
            load = False
        return create_segmenter(arch, num_classes=num_classes, weights=weights if load else None, **kwargs)

    entry.__name__ = entry.__qualname__ = f"unip_{letter.lower()}_upernet"
    entry.__doc__ = (f"UNIP-{letter} + LL-FPN + UPerNet, backbone pre-trained (MAE-L teacher) by default."
                     if default is not None else
                     f"UNIP-{letter} + LL-FPN + UPerNet; no UNIP-{letter} weights were released, so pass "
                     "``weights=<your file>`` to pre-train.")
    return entry


UPERNETS: dict[str, Callable[..., Segmenter]] = {
    f"unip_{VIT_SIZES[arch].letter.lower()}_upernet": _upernet_entry(arch) for arch in VIT_SIZES}
"""The torch.hub segmenters ``unip_t_upernet`` ... ``unip_l_upernet`` (module attributes too)."""
globals().update(UPERNETS)
