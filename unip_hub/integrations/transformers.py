"""UNIP in Hugging Face transformers (5.x): ``UnipConfig``, ``UnipModel``, ``UnipBackbone`` and UperNet helpers.

``model_type="unip"`` is registered with ``AutoConfig``, ``AutoModel`` and ``AutoBackbone`` the moment transformers
is imported, before or after ``import unip_hub`` (see :mod:`unip_hub.integrations`); importing this module imports
transformers and registers at once::

    import unip_hub.integrations.transformers as unip_tf
    from transformers import UperNetConfig, UperNetForSemanticSegmentation
    cfg = UperNetConfig(backbone_config=unip_tf.UnipConfig(arch="unip_vit_small"), num_labels=9, hidden_size=384)
    model = UperNetForSemanticSegmentation(cfg)               # LL-FPN levels (strides 4/8/16/32) feed UPerNet
    model = unip_tf.upernet_from_checkpoint("iter_9800.pth")  # a segmenter trained with the research code (mmseg)
    vit = unip_tf.UnipModel.from_unip(unip_hub.unip_vit_small(weights="mae_large"))   # released weights

Both models hold this package's :class:`~unip_hub.models.vit.UnipViT` as the submodule ``unip`` (thin adapters:
their weights are the package's, prefixed ``unip.``); ``UnipBackbone`` adds the LL-FPN (or multi-layer FPN) as
``neck``. transformers' ``UperNetHead`` is a port of mmseg's ``UPerHead``, so a research-code checkpoint gives the
same logits as :class:`~unip_hub.models.segmenter.Segmenter` (only the parameter names differ, see
:func:`convert_segmenter_to_upernet`).
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoBackbone, AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.backbone_utils import BackboneConfigMixin, BackboneMixin
from transformers.modeling_outputs import BackboneOutput, BaseModelOutputWithPooling

from unip_hub.integrations._pyramid import FINETUNE_DEFAULTS, NECKS
from unip_hub.models.pyramid import ViTPyramid
from unip_hub.models.vit import ARCHS, UnipViT, arch_from_shape

__all__ = ["LEVELS", "STAGES", "UnipBackbone", "UnipConfig", "UnipModel", "convert_segmenter_to_upernet",
           "run_blocks", "upernet_config", "upernet_from_checkpoint"]

STAGES = ["stem", "stage1", "stage2", "stage3", "stage4"]
"""Backbone stages: ``stem`` = the embedded patches (stride 16), ``stage1``..``stage4`` = the pyramid levels at
strides 4, 8, 16, 32 (transformers' backbone convention: a stem, then the stages)."""
LEVELS = STAGES[1:]
"""The four pyramid levels UPerNet takes (:func:`upernet_config` selects them)."""


def _legacy_out_indices(out_features: list[str] | None, out_indices: list[int] | None) -> list[int] | None:
    """Folders saved before the ``stem`` stage existed number the levels 0-3; read those as 1-4."""
    if (out_features and out_indices is not None and all(f in LEVELS for f in out_features)
            and list(out_indices) == [LEVELS.index(f) for f in out_features]):
        return [STAGES.index(f) for f in out_features]
    return out_indices


@strict
class UnipConfig(BackboneConfigMixin, PreTrainedConfig):
    """Configuration of a UNIP ViT (``arch`` fills width, depth and heads) and of its pyramid when a backbone.

    Args:
        arch: ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``; explicit sizes below override it.
        hidden_size: Width C.
        num_hidden_layers: Blocks.
        num_attention_heads: Heads of every block but the last.
        last_heads: Heads of the last block (``None`` = standard; distilled students: 16).
        distilled_last_heads: Metadata: the last-block head count the weights were distilled with.
        image_size: Size the position embedding is stored at (other multiples of 16 are resized on the fly).
        num_channels: Input channels.
        drop_path_rate: Stochastic depth.
        layerscale_value: Layer-scale init (``None`` = none; UNIP fine-tuning: 1.0).
        pos_embed_trainable: Learnt position embedding (fine-tuning) or fixed sin-cos (pre-training).
        neck: Backbone pyramid, ``"last"`` (LL-FPN) or ``"multi"`` (blocks [3, 5, 7, 11]).
        neck_layers: Override the blocks fed to the neck.
        out_features / out_indices: Stages returned by :class:`UnipBackbone` (:data:`STAGES`; default: the last,
            ``stage4``, as every transformers backbone; UperNet needs :data:`LEVELS`, see :func:`upernet_config`).
    """

    model_type = "unip"

    arch: str = "unip_vit_small"
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    last_heads: int | None = None
    distilled_last_heads: int | None = None
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    image_size: int | list[int] | tuple[int, int] = 224
    patch_size: int = 16
    num_channels: int = 3
    drop_path_rate: float | int = 0.0
    layerscale_value: float | int | None = None
    pos_embed_trainable: bool = False
    neck: str = "last"
    neck_layers: list[int] | None = None
    initializer_range: float = 0.02
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {sorted(ARCHS)}")
        if self.neck not in NECKS:
            raise ValueError(f"neck must be one of {NECKS}, got {self.neck!r}")
        spec = ARCHS[self.arch]
        self.hidden_size = self.hidden_size or spec.embed_dim
        self.num_hidden_layers = self.num_hidden_layers or spec.depth
        self.num_attention_heads = self.num_attention_heads or spec.num_heads
        kwargs.pop("stage_names", None)  # derived, whatever a saved config.json says (earlier releases had no stem)
        self.stage_names = list(STAGES)
        out_features, out_indices = kwargs.pop("out_features", None), kwargs.pop("out_indices", None)
        self.set_output_features_output_indices(out_features=out_features,
                                                out_indices=_legacy_out_indices(out_features, out_indices))
        super().__post_init__(**kwargs)

    def vit_kwargs(self) -> dict[str, Any]:
        """The :class:`UnipViT` constructor arguments this config describes."""
        size = self.image_size if isinstance(self.image_size, int) else tuple(self.image_size)
        return dict(img_size=size, patch_size=self.patch_size, in_chans=self.num_channels, embed_dim=self.hidden_size,
                    depth=self.num_hidden_layers, num_heads=self.num_attention_heads, last_heads=self.last_heads,
                    mlp_ratio=float(self.mlp_ratio), qkv_bias=self.qkv_bias, drop_path_rate=float(self.drop_path_rate),
                    init_values=self.layerscale_value, pos_embed_trainable=self.pos_embed_trainable,
                    distilled_last_heads=self.distilled_last_heads)

    @classmethod
    def from_unip(cls, vit: UnipViT, **kwargs: Any) -> UnipConfig:
        """The config of an existing :class:`UnipViT` (``kwargs``: neck / out_features / ...)."""
        blk = vit.blocks[0]
        ls = getattr(blk.ls1, "gamma", None)
        arch = arch_from_shape(vit.embed_dim) or "unip_vit_small"  # the preset of this width; sizes set below
        return cls(arch=arch, hidden_size=vit.embed_dim, num_hidden_layers=vit.depth,
                   num_attention_heads=vit.num_heads, last_heads=vit.last_heads if vit.last_heads != vit.num_heads
                   else None, distilled_last_heads=vit.distilled_last_heads,
                   mlp_ratio=blk.mlp.fc1.out_features / vit.embed_dim, qkv_bias=blk.attn.qkv.bias is not None,
                   image_size=[g * vit.patch_size for g in vit.pos_grid], patch_size=vit.patch_size,
                   num_channels=vit.in_chans, layerscale_value=float(ls.mean()) if ls is not None else None,
                   pos_embed_trainable=vit.pos_embed.requires_grad, **kwargs)


class UnipPreTrainedModel(PreTrainedModel):
    """Weight initialisation and names shared by :class:`UnipModel` and :class:`UnipBackbone`."""

    config_class = UnipConfig
    config: UnipConfig
    base_model_prefix = "unip"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False
    _no_split_modules = ("Block",)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # UnipViT's own (MAE) scheme through transformers' guarded init functions, which skip loaded tensors
        from transformers import initialization as init

        from unip_hub.layers import sincos_pos_embed_2d

        if isinstance(module, UnipViT):
            init.normal_(module.cls_token, std=0.02)
            init.copy_(module.pos_embed, sincos_pos_embed_2d(module.embed_dim, module.pos_grid).to(module.pos_embed))
            w = module.patch_embed.proj.weight  # xavier-uniform of the (C, C_in * p * p) matrix, as MAE
            init.uniform_(w, -(6.0 / (w.shape[0] + w[0].numel())) ** 0.5, (6.0 / (w.shape[0] + w[0].numel())) ** 0.5)
        elif isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif hasattr(module, "gamma") and self.config.layerscale_value is not None:  # LayerScale
            init.constant_(module.gamma, float(self.config.layerscale_value))
        elif isinstance(module, nn.Conv2d) and module.bias is not None:  # the patch projection's bias
            init.zeros_(module.bias)
        elif isinstance(module, nn.ConvTranspose2d) and not getattr(module.weight, "_is_hf_initialized", False):
            module.reset_parameters()


class UnipModel(UnipPreTrainedModel):
    """The UNIP ViT: ``last_hidden_state`` = normalised tokens (B, 1 + N, C), ``pooler_output`` = class token."""

    def __init__(self, config: UnipConfig) -> None:
        super().__init__(config)
        self.unip = UnipViT(**config.vit_kwargs())
        self.post_init()

    @classmethod
    def from_unip(cls, vit: UnipViT) -> UnipModel:
        """Wraps the weights of a package model (e.g. ``unip_vit_small(weights="mae_large")``) in one call."""
        model = cls(UnipConfig.from_unip(vit))
        model.unip.load_state_dict(vit.state_dict())
        return model.eval()

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPooling | tuple:
        """(B, C_in, H, W) -> normalised tokens (B, 1 + N, C) and the class token.

        ``hidden_states``: the embeddings and every block's output (B, 1 + N, C), un-normalised (depth + 1 of
        them); ``attentions``: every block's post-softmax attention (B, heads, N, N), computed explicitly only
        when asked for (otherwise the fused kernel runs).
        """
        hidden, attend, return_dict = _flags(self.config, output_hidden_states, output_attentions, return_dict)
        vit = self.unip
        tokens = attentions = None
        if hidden or attend:
            tokens, attentions, _ = run_blocks(vit, pixel_values, vit.depth, attend)
            last = vit.norm(tokens[-1])
        else:
            last = vit.forward_features(pixel_values)  # (B, 1 + N, C)
        out = BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=last[:, 0],
                                         hidden_states=tuple(tokens) if hidden else None,
                                         attentions=tuple(attentions) if attend else None)
        return out if return_dict else out.to_tuple()


class UnipBackbone(BackboneMixin, UnipPreTrainedModel):
    """UNIP as a transformers backbone: the embedded patches (``stem``) and the pyramid levels (``stage1``..``4``).

    The levels are the LL-FPN (or multi-layer FPN) maps at strides 4, 8, 16, 32, all ``hidden_size`` wide; the
    forward is :class:`~unip_hub.models.pyramid.ViTPyramid`'s over this model's ``unip`` and ``neck``.
    """

    has_attentions = True

    def __init__(self, config: UnipConfig) -> None:
        super().__init__(config)
        from unip_hub.hub.segmenters import default_layers
        from unip_hub.necks import LastLayerFPN, MultiLayerFPN

        self.unip = UnipViT(**config.vit_kwargs())
        c = config.hidden_size
        self.neck = LastLayerFPN(c) if config.neck == "last" else MultiLayerFPN(c)
        layers = config.neck_layers or default_layers(config.num_hidden_layers, "upernet", config.neck)
        # the one multi-scale forward (ViTPyramid) over these very modules; kept out of the module tree so the
        # weights stay named unip.* / neck.* (saved folders, convert_segmenter_to_upernet)
        self.__dict__["pyramid"] = ViTPyramid(self.unip, self.neck, layers)
        self.layers = self.pyramid.layers
        self.num_features = [c, *self.pyramid.level_channels]  # one per stage: stem, stage1..stage4
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, return_dict: bool | None = None) -> BackboneOutput | tuple:
        """(B, C_in, H, W), H and W multiples of 16 -> the ``out_features`` stages, each (B, C, H/s, W/s).

        ``hidden_states``: the embeddings and the outputs of the blocks run (B, 1 + N, C), un-normalised;
        ``attentions``: those blocks' post-softmax attention (B, heads, N, N), explicit only when asked for.
        """
        hidden, attend, return_dict = _flags(self.config, output_hidden_states, output_attentions, return_dict)
        tokens = attentions = None
        if hidden or attend or "stem" in self.out_features:
            tokens, attentions, grid = run_blocks(self.unip, pixel_values, self.layers[-1] + 1, attend)
            maps = [_to_map(tokens[i + 1], grid) for i in self.layers]  # (B, C, H/16, W/16) each
            stages = [_to_map(tokens[0], grid), *self.neck(maps)]
        else:
            stages = [None, *self.pyramid(pixel_values)]  # 4 x (B, C, H/s, W/s), s = 4, 8, 16, 32
        feats = tuple(stages[STAGES.index(name)] for name in self.out_features)
        out = BackboneOutput(feature_maps=feats, hidden_states=tuple(tokens) if hidden else None,
                             attentions=tuple(attentions) if attend else None)
        return out if return_dict else out.to_tuple()


def run_blocks(vit: UnipViT, x: torch.Tensor, depth: int, attentions: bool = False
               ) -> tuple[list[torch.Tensor], list[torch.Tensor], tuple[int, int]]:
    """One pass over the first ``depth`` blocks keeping every output (what ``output_hidden_states`` reports).

    Returns:
        The embeddings and each block's output (B, 1 + N, C); with ``attentions`` each block's post-softmax
        attention (B, heads, N, N) from its explicit path (else an empty list, and the fused kernel runs); the grid.
    """
    t, grid = vit.prepare_tokens(x)
    tokens, maps = [t], []
    for blk in vit.blocks[:depth]:
        if attentions:
            t, logits = blk.forward_with_logits(t)
            maps.append(logits.softmax(dim=-1))
        else:
            t = blk(t)
        tokens.append(t)
    return tokens, maps, grid


def _to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    # (B, 1 + N, C) -> patch tokens as (B, C, H/16, W/16)
    b, _, c = tokens.shape
    return tokens[:, 1:].transpose(1, 2).reshape(b, c, grid[0], grid[1])


def _flags(config: UnipConfig, hidden: bool | None, attend: bool | None, return_dict: bool | None
           ) -> tuple[bool, bool, bool]:
    """Call arguments over the config's defaults: output_hidden_states, output_attentions, return_dict."""
    return (config.output_hidden_states if hidden is None else hidden,
            config.output_attentions if attend is None else attend,
            config.return_dict if return_dict is None else return_dict)


AutoConfig.register("unip", UnipConfig, exist_ok=True)
AutoModel.register(UnipConfig, UnipModel, exist_ok=True)
AutoBackbone.register(UnipConfig, UnipBackbone, exist_ok=True)


# ------------------------------------------------------------------------------------------------ UperNet
def upernet_config(arch: str = "unip_vit_small", *, num_labels: int, neck: str = "last", aux: bool = True,
                   id2label: dict[int, str] | None = None, **unip_kwargs: Any):
    """transformers ``UperNetConfig`` of UNIP's segmenter: UNIP backbone with the fine-tuning recipe, UPerNet of
    width C, FCN auxiliary head (256 channels, weight 0.4), ignore index 255.

    ``unip_kwargs`` override :class:`UnipConfig` fields (``hidden_size=64, num_hidden_layers=2`` ... for tests).
    """
    from transformers import UperNetConfig

    recipe = dict(image_size=FINETUNE_DEFAULTS["img_size"], drop_path_rate=FINETUNE_DEFAULTS["drop_path_rate"],
                  layerscale_value=FINETUNE_DEFAULTS["init_values"], pos_embed_trainable=True)
    backbone = UnipConfig(arch=arch, neck=neck, out_features=list(LEVELS), **{**recipe, **unip_kwargs})
    labels = {"id2label": id2label} if id2label else {}
    return UperNetConfig(backbone_config=backbone, num_labels=num_labels, hidden_size=backbone.hidden_size,
                         pool_scales=[1, 2, 3, 6], use_auxiliary_head=aux, auxiliary_loss_weight=0.4,
                         auxiliary_channels=256, auxiliary_num_convs=1, auxiliary_concat_input=False,
                         loss_ignore_index=255, **labels)


_HEAD_RENAMES = [(re.compile(r"\.bn\."), ".batch_norm."), (re.compile(r"\.conv_seg\."), ".classifier.")]


def convert_segmenter_to_upernet(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our :class:`Segmenter` names (what :mod:`unip_hub.checkpoints` makes of mmseg files) -> transformers UperNet.

    ``backbone.*`` -> ``backbone.unip.*``, ``neck.*`` -> ``backbone.neck.*``, and in both heads ``bn`` ->
    ``batch_norm``, ``conv_seg`` -> ``classifier`` (``psp_modules.{i}.1``, ``lateral_convs``... keep their names).
    """
    out = {}
    for k, v in sd.items():
        if k.startswith("backbone."):
            k = "backbone.unip." + k[len("backbone."):]
        elif k.startswith("neck."):
            k = "backbone." + k
        elif k.startswith(("decode_head.", "auxiliary_head.")):
            for pattern, new in _HEAD_RENAMES:
                k = pattern.sub(new, k)
        else:
            raise ValueError(f"unexpected key {k!r} in a segmenter state dict")
        out[k] = v
    return out


def upernet_from_checkpoint(checkpoint: str | os.PathLike, *, arch: str | None = None,
                            num_labels: int | None = None, neck: str = "last", **unip_kwargs: Any):
    """A transformers ``UperNetForSemanticSegmentation`` holding a segmenter checkpoint (mmseg's or ours).

    Read safely and loaded strictly through :mod:`unip_hub.checkpoints`; class names from the file's meta become
    ``id2label``. Gives the same logits as ``unip_hub.load_segmenter(checkpoint)`` (eval mode).
    """
    from transformers import UperNetForSemanticSegmentation

    from unip_hub.checkpoints import checkpoint_filter_fn, load_state_dict_strict
    from unip_hub.checkpoints.segmenter_files import SegmenterCheckpoint

    ckpt = SegmenterCheckpoint.read(checkpoint)
    sd, meta, found = ckpt.state_dict, ckpt.meta, ckpt.found
    if found["head"] != "upernet":
        raise ValueError(f"{checkpoint} holds a {found['head']!r} head; only UPerNet segmenters map to transformers")
    arch = arch or meta.get("arch") or arch_from_shape(found.get("embed_dim")) or "unip_vit_small"
    num_labels = num_labels or meta.get("num_classes") or found["num_classes"]
    names = meta.get("class_names")
    for key, field in (("embed_dim", "hidden_size"), ("depth", "num_hidden_layers"), ("img_size", "image_size"),
                       ("in_chans", "num_channels")):
        if key in found:
            unip_kwargs.setdefault(field, found[key])
    if not any(k.endswith(".ls1.gamma") for k in sd):
        unip_kwargs.setdefault("layerscale_value", None)
    cfg = upernet_config(arch, num_labels=num_labels, neck=neck, aux=found["aux"],
                         id2label=dict(enumerate(names)) if names and len(names) == num_labels else None,
                         **unip_kwargs)
    model = UperNetForSemanticSegmentation(cfg)
    bb = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    sd.update({"backbone." + k: v for k, v in checkpoint_filter_fn(bb, model.backbone.unip).items()})
    load_state_dict_strict(model, convert_segmenter_to_upernet(sd), source=os.fspath(checkpoint),
                           allow_missing=[r"backbone\.unip\.norm\.(weight|bias)", r".*\.num_batches_tracked"])
    return model.eval()
