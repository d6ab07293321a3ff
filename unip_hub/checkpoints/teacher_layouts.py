"""Teacher checkpoints for NMI-HAD: one conversion function per official layout, and the refusing load check.

Layouts (all read with :func:`unip_hub.checkpoints.read_checkpoint`, so no pickled code runs):

* ``mae``: MAE pre-training files, ``{'model': encoder + decoder}``; ``decoder_*`` and ``mask_token`` are dropped.
* ``ibot``: iBOT training files ``{'teacher': {'backbone.*', 'head.*'}, 'student': ...}`` (the teacher branch is
  used), or the extracted backbone ``{'state_dict': ...}``; ``head.*`` and ``masked_embed`` are dropped.
* ``dino``: DINO backbones, a plain state dict (``dino_vitbase16_pretrain.pth``), or a training file like iBOT's.
* ``deit``: DeiT files ``{'model': ...}`` with a classifier ``head`` (dropped); distilled DeiT also has
  ``dist_token`` / ``head_dist``, refused unless ``drop_dist_token=True`` (then the token and its position row go).
* ``timm``: a timm ``VisionTransformer`` state dict; vanilla ViTs have this package's names already.
* ``unip``: a released UNIP student or any ``{'model': ...}`` file in MAE/timm names.

The research code loads teachers with ``strict=False``, so a file in another layout silently gives a random
teacher. :func:`load_teacher_state_dict` refuses instead: every weight of the patch embedding, tokens, position
embedding and of each block up to the distilled layer must be in the file, and nothing else may be left over.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from unip_hub.checkpoints.convert import rename_layer_scale
from unip_hub.checkpoints.read import CheckpointError
from unip_hub.checkpoints.spec import infer_vit_spec
from unip_hub.checkpoints.strict import LoadReport, load_state_dict_strict

__all__ = ["TEACHER_FORMATS", "convert_deit", "convert_dino", "convert_ibot", "convert_mae", "convert_timm",
           "convert_unip", "detect_teacher_format", "infer_vit_spec", "load_teacher_state_dict", "teacher_state_dict"]

TEACHER_FORMATS = ("mae", "ibot", "dino", "deit", "timm", "unip")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_NOT_ENCODER = re.compile(r"^(fc_norm|head|head_dist|pre_logits)(\.|$)")


def _tensors(sd: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _strip(sd: Mapping[str, torch.Tensor], *prefixes: str) -> dict[str, torch.Tensor]:
    out = dict(sd)
    for p in prefixes:
        if out and all(k.startswith(p) for k in out):
            out = {k[len(p):]: v for k, v in out.items()}
    return out


def _rename_layer_scale(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {rename_layer_scale(k): v for k, v in sd.items()}


def _model_dict(obj: Mapping[str, Any], fmt: str) -> dict[str, torch.Tensor]:
    sd = obj.get("model", obj)
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"not a {fmt} checkpoint: 'model' is a {type(sd).__name__}, not a state dict")
    return _strip(_tensors(sd), "module.")


def convert_mae(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """MAE ``{'model': encoder + decoder}`` (or encoder-only) -> encoder weights in our names."""
    sd = _model_dict(obj, "MAE")
    return {k: v for k, v in sd.items() if not (k.startswith("decoder_") or k == "mask_token")}


def _ssl_backbone(obj: Mapping[str, Any], which: str, fmt: str) -> dict[str, torch.Tensor]:
    if which not in ("teacher", "student"):
        raise ValueError(f"which must be 'teacher' or 'student', got {which!r}")
    if isinstance(obj.get(which), Mapping):
        sd = obj[which]
    elif isinstance(obj.get("state_dict"), Mapping):
        sd = obj["state_dict"]
    elif isinstance(obj.get("model"), Mapping):
        sd = obj["model"]
    else:
        sd = obj
    sd = _strip(_tensors(sd), "module.")
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    if not sd:
        raise CheckpointError(f"no {fmt} backbone weights found (top-level keys {sorted(map(str, obj))[:8]})")
    return {k: v for k, v in sd.items() if not (k.startswith("head.") or k == "masked_embed")}


def convert_ibot(obj: Mapping[str, Any], which: str = "teacher") -> dict[str, torch.Tensor]:
    """iBOT training file (``teacher``/``student`` branch, ``backbone.`` prefix) or extracted backbone -> ours."""
    return _ssl_backbone(obj, which, "iBOT")


def convert_dino(obj: Mapping[str, Any], which: str = "teacher") -> dict[str, torch.Tensor]:
    """DINO plain backbone state dict (or training file with ``teacher``/``student``) -> ours."""
    return _ssl_backbone(obj, which, "DINO")


def convert_deit(obj: Mapping[str, Any], drop_dist_token: bool = False) -> dict[str, torch.Tensor]:
    """DeiT ``{'model': ...}`` -> encoder weights (classifier heads dropped).

    Args:
        obj: The file's content.
        drop_dist_token: Distilled DeiT runs with two prefix tokens (class + distillation); this package's ViT has
            one. ``True`` removes the distillation token and its position-embedding row, which changes the
            teacher's activations; the default refuses such files.
    """
    sd = {k: v for k, v in _model_dict(obj, "DeiT").items() if not k.startswith(("head.", "head_dist."))}
    if "dist_token" in sd:
        if not drop_dist_token:
            raise CheckpointError("this is a distilled DeiT (it has a 'dist_token'); its blocks expect two prefix "
                                  "tokens. Use a non-distilled DeiT, or pass drop_dist_token=True to run it with the "
                                  "class token only (its attention then differs from the original model's)")
        sd.pop("dist_token")
        pos = sd["pos_embed"]  # (1, 2 + N, C): [cls, dist, patches]
        sd["pos_embed"] = torch.cat([pos[:, :1], pos[:, 2:]], dim=1)
    return sd


def convert_timm(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A timm ``VisionTransformer`` state dict -> ours; refuses features this package's ViT does not have."""
    sd = _strip(_tensors(sd), "module.")
    odd = sorted(k for k in sd if k == "reg_token" or ".q_norm." in k or ".k_norm." in k or k.startswith(
        ("norm_pre.", "attn_pool.")) or ".attn.norm." in k)
    if odd:
        raise CheckpointError(f"this timm ViT has parts the UNIP ViT lacks ({', '.join(odd[:6])}): register tokens, "
                              "qk-norm, pre-norm or attention pooling cannot be converted. Profile it directly with "
                              "unip_hub.analysis.layer_patterns (it hooks timm's attention)")
    return {k: v for k, v in _rename_layer_scale(sd).items() if not k.startswith(("head.", "fc_norm."))}


def convert_unip(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A released UNIP student (or any ``{'model': ...}``/plain file in MAE/timm names) -> ours."""
    return _rename_layer_scale(convert_mae(obj))


def detect_teacher_format(obj: Mapping[str, Any]) -> str:
    """Guesses the layout of a teacher file: ``ibot`` / ``mae`` / ``deit`` / ``dino``."""
    if isinstance(obj.get("teacher"), Mapping) or isinstance(obj.get("student"), Mapping):
        return "ibot"
    if isinstance(obj.get("model"), Mapping):
        keys = set(obj["model"])
        if keys & {"dist_token", "head_dist.weight", "head.weight"}:
            return "deit"
        return "mae"
    if isinstance(obj.get("state_dict"), Mapping):
        return "ibot"
    return "dino"


def teacher_state_dict(obj: Mapping[str, Any], fmt: str = "auto", drop_dist_token: bool = False
                       ) -> dict[str, torch.Tensor]:
    """Encoder weights of a teacher file in our names, through the conversion function of its layout.

    Args:
        obj: What :func:`read_checkpoint` returned.
        fmt: One of :data:`TEACHER_FORMATS` or ``"auto"`` (:func:`detect_teacher_format`).
        drop_dist_token: See :func:`convert_deit`.
    """
    fmt = detect_teacher_format(obj) if fmt == "auto" else fmt
    converters = {"mae": convert_mae, "ibot": convert_ibot, "dino": convert_dino, "timm": convert_timm,
                  "unip": convert_unip, "deit": lambda o: convert_deit(o, drop_dist_token)}
    if fmt not in converters:
        raise ValueError(f"unknown teacher format {fmt!r}; choose one of {TEACHER_FORMATS} or 'auto'")
    return _rename_layer_scale(converters[fmt](obj))


def load_teacher_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], layer: int, source: str = "teacher"
                            ) -> LoadReport:
    """Loads the encoder up to ``layer`` (1-based) into a ViT truncated to ``layer`` blocks; refuses gaps.

    Blocks after ``layer``, the classifier and (when truncating) the final norm of the file are dropped: they are
    never used. Every other weight of ``model`` must be present, and no other key may remain.

    Raises:
        CheckpointError: naming the missing encoder weights, the leftover keys or the shape mismatches.
    """
    if len(model.blocks) != layer:
        raise ValueError(f"the teacher model has {len(model.blocks)} blocks; build it truncated to layer={layer}")
    depth = 1 + max((int(m.group(1)) for k in sd if (m := _BLOCK.match(k))), default=-1)
    if depth < layer:
        raise CheckpointError(f"{source} has {depth} encoder blocks; it cannot be distilled at layer {layer}")
    truncated = layer < depth
    kept = {k: v for k, v in sd.items() if not _NOT_ENCODER.match(k) and not (truncated and k.startswith("norm."))
            and not ((m := _BLOCK.match(k)) and int(m.group(1)) >= layer)}
    own = model.state_dict()
    missing = [k for k in own if k not in kept and not re.match(r"(norm|head)\.", k)]
    if missing:
        raise CheckpointError(f"{source} lacks {len(missing)} encoder weights needed up to layer {layer}: "
                              f"{', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}. It is not a ViT "
                              "checkpoint in the expected layout (or of another size); a teacher is never "
                              "left partly random")
    return load_state_dict_strict(model, kept, source=source, allow_missing=[r"(norm|head)\.(weight|bias)"])
