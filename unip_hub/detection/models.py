"""UNIP detectors: ViT -> LL-FPN + torchvision FPN -> torchvision Faster R-CNN / Mask R-CNN / RetinaNet / FCOS.

>>> det = create_detector("unip_vit_small", head="faster_rcnn", num_classes=3, weights="mae_large")
>>> det.train(); losses = det(images, targets)         # dict of scalar losses
>>> det.eval(); outputs = det(images)                  # list of dict(boxes, scores, labels[, masks])

Pyramids (:func:`unip_hub.integrations.torchvision.build_backbone`): the two-stage heads read the LL-FPN at strides
4/8/16/32 through torchvision's FPN plus a max-pooled stride-64 level (ViTDet's simple feature pyramid, the maps
``"0"``..``"3"``, ``"pool"`` that torchvision's anchors and RoI pooler expect). The dense one-stage heads read strides
8/16/32 plus P6/P7 (strides 64/128), as torchvision's RetinaNet and FCOS do over a ResNet: their anchor sizes
(32-512, 8-128) are set for those strides, and a stride-4 level would hold 4x the anchors of all others together.

Labels are 0..K-1 at this API; torchvision's two-stage heads count background as class 0, so their classes are
shifted by one inside :class:`UnipDetector` only. Images are 0-1 float (3, H, W); the torchvision transform resizes
them (``min_size`` / ``max_size``), normalises them with the pre-training statistics and pads the batch to a
multiple of 32 (the ViT needs multiples of 16, the LL-FPN's stride-32 level multiples of 32).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from unip_hub.constants import INPUT_SCALING
from unip_hub.integrations.torchvision import IMAGE_MEAN, IMAGE_STD, build_backbone

__all__ = [
    "BOX_HEADS",
    "HEADS",
    "HUB_ENTRY_POINTS",
    "SIZE_DIVISIBLE",
    "UnipDetector",
    "create_detector",
    "default_global_blocks",
    "unip_b_faster_rcnn",
    "unip_s_faster_rcnn",
    "unip_s_fcos",
    "unip_s_mask_rcnn",
    "unip_s_retinanet",
    "unip_t_faster_rcnn",
    "window_attention",
]

HEADS = ("faster_rcnn", "retinanet", "fcos", "mask_rcnn")
TWO_STAGE = ("faster_rcnn", "mask_rcnn")
BOX_HEADS = ("default", "4conv1fc")
SIZE_DIVISIBLE = 32
"""Padding of the batched images: the LL-FPN's stride-32 level (max-pooled from stride 16) needs multiples of 32."""
ANCHOR_SIZES = (32, 64, 128, 256, 512)
DEFAULT_MIN_SIZE = DEFAULT_MAX_SIZE = 1024
"""The detection recipe's test resize: shortest edge 1024, longest at most 1024 (reference section 7)."""


class UnipDetector(nn.Module):
    """A torchvision detector over a UNIP ViT, with labels 0..K-1 and the model's input reading attached.

    Args:
        detector: The torchvision model (``FasterRCNN``, ``MaskRCNN``, ``RetinaNet`` or ``FCOS``) whose
            ``backbone.body.backbone`` is the UNIP ViT.
        head: Which of :data:`HEADS` it is.
        num_classes: Object classes K (no background).
        class_names: Optional K names.
        input_scaling: How raw frames become the model's 8-bit gray (text of an
            :class:`~unip_hub.data.scaling.InputScaling`), as :class:`~unip_hub.models.segmenter.Segmenter`.
        counts_to_celsius: ``(gain, offset)`` of the 16-bit counts it was trained on, or ``None``.
        config: How the builder made it (saved with the weights; :func:`create_detector` keywords).
    """

    def __init__(self, detector: nn.Module, *, head: str, num_classes: int, class_names: Sequence[str] | None = None,
                 input_scaling: str | None = None, counts_to_celsius: Sequence[float] | None = None,
                 config: dict[str, Any] | None = None) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for num_classes={num_classes}")
        self.detector = detector
        self.head_type = head
        self.num_classes = int(num_classes)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.label_offset = 1 if head in TWO_STAGE else 0  # torchvision's background class 0 in two-stage heads
        self.input_scaling = str(input_scaling or INPUT_SCALING)
        self.counts_to_celsius = [float(v) for v in counts_to_celsius] if counts_to_celsius is not None else None
        self.config: dict[str, Any] = dict(config or {})

    # ------------------------------------------------------------------------------------------ properties
    @property
    def backbone(self) -> nn.Module:
        """The UNIP ViT (for layer-wise lr decay and freezing)."""
        return self.detector.backbone.body.backbone

    @property
    def _post(self) -> nn.Module:
        # where torchvision keeps the post-processing settings
        return self.detector.roi_heads if self.head_type in TWO_STAGE else self.detector

    @property
    def score_thresh(self) -> float:
        """Detections scoring below this are dropped (eval mode)."""
        return float(self._post.score_thresh)

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self._post.score_thresh = float(value)

    @property
    def nms_thresh(self) -> float:
        """IoU of the per-class non-maximum suppression."""
        return float(self._post.nms_thresh)

    @nms_thresh.setter
    def nms_thresh(self, value: float) -> None:
        self._post.nms_thresh = float(value)

    @property
    def detections_per_img(self) -> int:
        """At most this many detections per image."""
        return int(self._post.detections_per_img)

    @detections_per_img.setter
    def detections_per_img(self, value: int) -> None:
        self._post.detections_per_img = int(value)

    # --------------------------------------------------------------------------------------------- forward
    def _check_images(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
        if isinstance(images, torch.Tensor):
            if images.ndim != 4:
                raise ValueError(f"images must be a list of (3, H, W) tensors or one (B, 3, H, W) tensor, got shape "
                                 f"{tuple(images.shape)}")
            images = list(images)
        images = list(images)
        for i, im in enumerate(images):
            if not isinstance(im, torch.Tensor) or im.ndim != 3 or im.shape[0] != 3 or not im.is_floating_point():
                got = tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__
                raise ValueError(f"image {i}: expected a float (3, H, W) tensor in 0..1 (gray copied to 3 channels), "
                                 f"got {got}")
        return images

    def _to_torchvision(self, target: dict[str, Any], i: int) -> dict[str, torch.Tensor]:
        if "boxes" not in target or "labels" not in target:
            raise ValueError(f"target {i}: needs 'boxes' (N, 4) XYXY pixels and 'labels' (N,) 0..{self.num_classes - 1}"
                             f", got keys {sorted(target)}")
        boxes = torch.as_tensor(target["boxes"]).as_subclass(torch.Tensor).to(torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(target["labels"]).as_subclass(torch.Tensor).to(torch.int64).reshape(-1)
        if len(labels) != len(boxes):
            raise ValueError(f"target {i}: {len(boxes)} boxes but {len(labels)} labels")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"target {i}: labels must be 0..{self.num_classes - 1} (num_classes={self.num_classes}),"
                             f" got {sorted(set(labels.tolist()))}")
        out = {"boxes": boxes, "labels": labels + self.label_offset}
        if self.head_type == "mask_rcnn":
            if "masks" not in target:
                raise ValueError(f"target {i}: mask_rcnn needs 'masks' (N, H, W) uint8; use head='faster_rcnn' for "
                                 "boxes only")
            out["masks"] = torch.as_tensor(target["masks"]).as_subclass(torch.Tensor).to(torch.uint8)
        return out

    def _from_torchvision(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        res = {"boxes": out["boxes"], "scores": out["scores"], "labels": out["labels"] - self.label_offset}
        if "masks" in out:
            res["masks"] = out["masks"]  # (N, 1, H, W) float probabilities
        return res

    def forward(self, images: Sequence[torch.Tensor] | torch.Tensor,
                targets: Sequence[dict[str, Any]] | None = None) -> dict[str, torch.Tensor] | list[dict]:
        """Train mode: images + targets -> dict of scalar losses; eval mode: images -> one dict per image.

        Args:
            images: B x (3, H, W) float in 0..1 (sizes may differ), or one (B, 3, H, W) tensor.
            targets: B dicts with ``boxes`` (N, 4) XYXY in input pixels, ``labels`` (N,) int64 0..K-1 and, for
                ``mask_rcnn``, ``masks`` (N, H, W) uint8. Needed in train mode; ignored in eval mode.

        Returns:
            Train: ``{loss name: scalar}``. Eval: per image ``boxes`` (N, 4) XYXY input pixels, ``scores`` (N,),
            ``labels`` (N,) int64 0..K-1 (and ``masks`` (N, 1, H, W) float for ``mask_rcnn``).
        """
        images = self._check_images(images)
        if self.training:
            if targets is None:
                raise ValueError("training mode needs targets (call model.eval() to detect)")
            if len(targets) != len(images):
                raise ValueError(f"{len(images)} images but {len(targets)} targets")
            return self.detector(images, [self._to_torchvision(t, i) for i, t in enumerate(targets)])
        return [self._from_torchvision(o) for o in self.detector(images)]


def default_global_blocks(depth: int) -> list[int]:
    """ViTDet's global-attention blocks: every third one, ending with the last (12 blocks: 2, 5, 8, 11)."""
    return list(range(2, depth, 3)) if depth % 3 == 0 else [depth - 1]


def window_attention(vit: nn.Module, window: int, global_blocks: Sequence[int]) -> list[Any]:
    """ViTDet's windowed attention on a UNIP ViT: every block not in ``global_blocks`` attends within ``window`` x
    ``window`` patches (the grid zero-padded to a multiple of ``window``, as ViTDet pads); no weights change.

    Done with forward hooks (the weights keep their names): a windowed block gets the windows (B * n, w * w, C)
    and gives back the grid; the class token skips windowed blocks (it is used by no detection feature, and
    attends globally in the global blocks). Returns the hook handles.
    """
    state: dict[str, Any] = {}

    def grid(_module: nn.Module, args: tuple) -> None:
        state["grid"] = (args[0].shape[-2] // vit.patch_size, args[0].shape[-1] // vit.patch_size)

    def split(_module: nn.Module, args: tuple) -> tuple:
        x = args[0]  # (B, 1 + h * w, C)
        (h, w), c = state["grid"], x.shape[-1]
        ph, pw = (window - h % window) % window, (window - w % window) % window
        state["cls"], state["pad"] = x[:, :1], (ph, pw)
        g = nn.functional.pad(x[:, 1:].reshape(-1, h, w, c), (0, 0, 0, pw, 0, ph))  # (B, H', W', C)
        g = g.reshape(-1, (h + ph) // window, window, (w + pw) // window, window, c).transpose(2, 3)
        return (g.reshape(-1, window * window, c),)  # (B * n, window * window, C)

    def merge(_module: nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor:
        (h, w), (ph, pw), c = state["grid"], state["pad"], out.shape[-1]
        g = out.reshape(-1, (h + ph) // window, (w + pw) // window, window, window, c).transpose(2, 3)
        g = g.reshape(-1, h + ph, w + pw, c)[:, :h, :w].reshape(-1, h * w, c)
        return torch.cat([state["cls"], g], dim=1)  # (B, 1 + h * w, C)

    handles = [vit.patch_embed.register_forward_pre_hook(grid)]
    for i, blk in enumerate(vit.blocks):
        if i not in set(global_blocks):
            handles += [blk.register_forward_pre_hook(split), blk.register_forward_hook(merge)]
    return handles


def _layer_norm_2d(channels: int) -> nn.Module:
    from timm.layers import LayerNorm2d

    return LayerNorm2d(channels, eps=1e-6)  # detectron2's "LN": LayerNorm over the channels of every pixel


def _two_stage_kwargs(box_head: str, channels: int, num_classes: int, rpn_convs: int) -> dict[str, Any]:
    """RPN head (``rpn_convs`` 3x3 convs) and, for ``"4conv1fc"``, ViTDet's box head and predictor."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
    from torchvision.models.detection.rpn import RPNHead

    # torchvision's (and ViTDet's) anchors: sizes 32..512 on the 5 maps (strides 4..64), aspect ratios 0.5 / 1 / 2
    anchors = AnchorGenerator(tuple((s,) for s in ANCHOR_SIZES), ((0.5, 1.0, 2.0),) * len(ANCHOR_SIZES))
    kw: dict[str, Any] = {"rpn_anchor_generator": anchors,
                          "rpn_head": RPNHead(channels, anchors.num_anchors_per_location()[0], conv_depth=rpn_convs)}
    if box_head == "4conv1fc":  # four 3x3 convs of 256 with LayerNorm, one fc of 1024
        kw["box_head"] = FastRCNNConvFCHead((channels, 7, 7), [256] * 4, [1024], norm_layer=_layer_norm_2d)
        kw["box_predictor"] = FastRCNNPredictor(1024, num_classes + 1)
    return kw


def _check_options(head: str, box_head: str, num_classes: int, min_size: int, max_size: int) -> None:
    """Raises ``ValueError`` for a head, box head, class count or size :func:`create_detector` cannot build."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if box_head not in BOX_HEADS:
        raise ValueError(f"box_head must be one of {BOX_HEADS}, got {box_head!r}")
    if box_head != "default" and head not in TWO_STAGE:
        raise ValueError(f"box_head={box_head!r} is a two-stage (faster_rcnn / mask_rcnn) option, not for {head}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1 (object classes, no background), got {num_classes}")
    if min(int(min_size), int(max_size)) < 1:
        raise ValueError(f"min_size and max_size must be positive, got {min_size}, {max_size}")


def _torchvision_detector(arch: str, head: str, box_head: str, num_classes: int, weights: Any, out_channels: int,
                          neck: str, rpn_convs: int, common: dict[str, Any], vit_kwargs: dict[str, Any]) -> nn.Module:
    """The torchvision detector of ``head`` on the UNIP pyramid (two-stage: strides 4-64; one-stage: 8-128)."""
    from torchvision.models import detection as tvd
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    if head in TWO_STAGE:
        backbone = build_backbone(arch, weights=weights, out_channels=out_channels, neck=neck, **vit_kwargs)
        kw = _two_stage_kwargs(box_head, out_channels, num_classes, rpn_convs)
        labels = None if "box_predictor" in kw else num_classes + 1
        cls = tvd.FasterRCNN if head == "faster_rcnn" else tvd.MaskRCNN
        return cls(backbone, num_classes=labels, **kw, **common)
    backbone = build_backbone(arch, weights=weights, out_channels=out_channels, neck=neck, levels=(1, 2, 3),
                              extra_blocks=LastLevelP6P7(out_channels, out_channels), **vit_kwargs)
    backbone.body.neck.fpn1 = nn.Identity()  # the stride-4 branch (its costliest) feeds no level here
    cls = tvd.RetinaNet if head == "retinanet" else tvd.FCOS
    return cls(backbone, num_classes=num_classes, **common)


def create_detector(
    arch: str = "unip_vit_small",
    *,
    head: str = "faster_rcnn",
    num_classes: int,
    weights: Any = None,
    class_names: Sequence[str] | None = None,
    box_head: str = "default",
    min_size: int = DEFAULT_MIN_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
    input_scaling: str | None = None,
    counts_to_celsius: Sequence[float] | None = None,
    out_channels: int = 256,
    neck: str = "last",
    rpn_convs: int = 2,
    window_size: int = 0,
    global_blocks: Sequence[int] | None = None,
    detector_kwargs: dict[str, Any] | None = None,
    **vit_kwargs: Any,
) -> UnipDetector:
    """Builds a UNIP detector (training mode), optionally with pre-trained backbone ``weights``.

    Args:
        arch: ``unip_vit_tiny`` / ``_small`` / ``_base`` / ``_large``.
        head: ``"faster_rcnn"``, ``"retinanet"``, ``"fcos"`` or ``"mask_rcnn"`` (needs instance masks).
        num_classes: Object classes K (labels 0..K-1, no background).
        weights: Backbone weights as :func:`~unip_hub.integrations.torchvision.build_backbone` takes them (registry
            tag such as ``"mae_large"``, :class:`~unip_hub.Weights`, file or folder), or ``None``.
        class_names: K names (stored in checkpoints, drawn on overlays).
        box_head: Two-stage heads only: ``"default"`` (torchvision's two fc layers of 1024) or ``"4conv1fc"``
            (ViTDet's: four 3x3 convs of 256 with LayerNorm, one fc of 1024).
        min_size: Shortest image side after the detector's resize (the recipe: 1024).
        max_size: Longest side at most this (the recipe: 1024).
        input_scaling: How raw frames become 8-bit gray (``None``: the default percentile scaling).
        counts_to_celsius: ``(gain, offset)`` of the 16-bit counts trained on, or ``None``.
        out_channels: FPN width.
        neck: ``"last"`` (LL-FPN, UNIP's) or ``"multi"`` (blocks [3, 5, 7, 11]).
        rpn_convs: 3x3 convs of the RPN head (ViTDet: 2).
        window_size: ViTDet's windowed attention (:func:`window_attention`): patches per window side (ViTDet: 14);
            0 = global attention in every block (UNIP's pre-training).
        global_blocks: Blocks keeping global attention with ``window_size`` (default: every third, 2, 5, 8, 11).
        detector_kwargs: Further keywords of the torchvision detector (``box_score_thresh``,
            ``rpn_post_nms_top_n_test``, ``topk_candidates``, ...); JSON values only, as they are saved.
        **vit_kwargs: :class:`~unip_hub.models.vit.UnipViT` options (``img_size``, ``drop_path_rate``, ``depth``...).

    Raises:
        ValueError: unknown ``head`` / ``box_head``, ``num_classes`` < 1, or sizes that are not positive.
    """
    _check_options(head, box_head, num_classes, min_size, max_size)
    num_classes = int(num_classes)
    extra = dict(detector_kwargs or {})
    common = dict(min_size=int(min_size), max_size=int(max_size), image_mean=IMAGE_MEAN, image_std=IMAGE_STD,
                  size_divisible=SIZE_DIVISIBLE, **extra)
    model = _torchvision_detector(arch, head, box_head, num_classes, weights, out_channels, neck, rpn_convs, common,
                                  vit_kwargs)
    vit = model.backbone.body.backbone
    if window_size:
        global_blocks = list(global_blocks) if global_blocks is not None else default_global_blocks(vit.depth)
        window_attention(vit, int(window_size), global_blocks)
    for p in vit.norm.parameters():  # features are taken before the final norm: never used
        p.requires_grad_(False)  # (frozen, so DDP needs no find_unused_parameters)
    config = {"arch": arch, "head": head, "num_classes": num_classes,
              "class_names": list(class_names) if class_names is not None else None, "box_head": box_head,
              "min_size": int(min_size), "max_size": int(max_size), "input_scaling": input_scaling,
              "counts_to_celsius": list(counts_to_celsius) if counts_to_celsius is not None else None,
              "out_channels": out_channels, "neck": neck, "rpn_convs": rpn_convs, "window_size": int(window_size),
              "global_blocks": list(global_blocks) if window_size else None, "detector_kwargs": extra,
              "vit_kwargs": dict(vit_kwargs)}
    det = UnipDetector(model, head=head, num_classes=num_classes, class_names=class_names,
                       input_scaling=input_scaling, counts_to_celsius=counts_to_celsius, config=config)
    return det.train()


# --------------------------------------------------------------------------------------- torch.hub entry points
def _hub(arch: str, head: str, num_classes: int, pretrained: bool, weights: Any, kwargs: dict) -> UnipDetector:
    return create_detector(arch, head=head, num_classes=num_classes, weights=weights if pretrained else None,
                           **kwargs)


def unip_t_faster_rcnn(*, num_classes: int, pretrained: bool = True, weights: Any = "mae_large",
                       **kwargs: Any) -> UnipDetector:
    """UNIP-T + LL-FPN + Faster R-CNN, backbone pre-trained (MAE-L teacher) by default; see :func:`create_detector`."""
    return _hub("unip_vit_tiny", "faster_rcnn", num_classes, pretrained, weights, kwargs)


def unip_s_faster_rcnn(*, num_classes: int, pretrained: bool = True, weights: Any = "mae_large",
                       **kwargs: Any) -> UnipDetector:
    """UNIP-S + LL-FPN + Faster R-CNN, backbone pre-trained (MAE-L teacher) by default; see :func:`create_detector`."""
    return _hub("unip_vit_small", "faster_rcnn", num_classes, pretrained, weights, kwargs)


def unip_b_faster_rcnn(*, num_classes: int, pretrained: bool = True, weights: Any = "mae_large",
                       **kwargs: Any) -> UnipDetector:
    """UNIP-B + LL-FPN + Faster R-CNN, backbone pre-trained (MAE-L teacher) by default; see :func:`create_detector`."""
    return _hub("unip_vit_base", "faster_rcnn", num_classes, pretrained, weights, kwargs)


def unip_s_mask_rcnn(*, num_classes: int, pretrained: bool = True, weights: Any = "mae_large",
                     **kwargs: Any) -> UnipDetector:
    """UNIP-S + LL-FPN + Mask R-CNN, backbone pre-trained (MAE-L teacher) by default; see :func:`create_detector`."""
    return _hub("unip_vit_small", "mask_rcnn", num_classes, pretrained, weights, kwargs)


def unip_s_retinanet(*, num_classes: int, pretrained: bool = True, weights: Any = "mae_large",
                     **kwargs: Any) -> UnipDetector:
    """UNIP-S + LL-FPN (strides 8-128) + RetinaNet, backbone pre-trained (MAE-L teacher) by default."""
    return _hub("unip_vit_small", "retinanet", num_classes, pretrained, weights, kwargs)


def unip_s_fcos(*, num_classes: int, pretrained: bool = True, weights: Any = "mae_large",
                **kwargs: Any) -> UnipDetector:
    """UNIP-S + LL-FPN (strides 8-128) + FCOS, backbone pre-trained (MAE-L teacher) by default."""
    return _hub("unip_vit_small", "fcos", num_classes, pretrained, weights, kwargs)


HUB_ENTRY_POINTS = ("unip_t_faster_rcnn", "unip_s_faster_rcnn", "unip_b_faster_rcnn", "unip_s_mask_rcnn",
                    "unip_s_retinanet", "unip_s_fcos")
