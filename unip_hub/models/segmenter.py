"""Segmenter: a UNIP ViT, a feature pyramid and decode heads (SAM-style composition of given modules).

Data flow (reference section 4): blocks ``layers`` of the backbone, patch tokens **before** the final norm, as
(B, C, H/16, W/16) maps -> neck (LL-FPN: strides 4/8/16/32) -> decode head -> logits at stride 4 -> bilinear
resize to the input size. Inputs of any size are padded at the bottom/right with 0 (the mean gray after
normalisation, as mmseg pads) to a multiple of 16 and at least the pyramid's coarsest stride (so a 1x1 image
works), and the logits are cropped back. The class takes and returns tensors only: reading files, PIL images and
arrays is :class:`unip_hub.inference.Predictor`'s job, building and loading :func:`unip_hub.create_segmenter`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unip_hub.constants import INPUT_SCALING, SEG_MEAN, SEG_STD, SLIDE_CROP, SLIDE_STRIDE
from unip_hub.models.pyramid import ViTPyramid
from unip_hub.models.slide import InferenceOptions, infer_logits, slide_logits
from unip_hub.models.vit import UnipViT

_NOT_A_TENSOR = ("Segmenter.{method} takes normalised float tensors (C_in, H, W) or (B, C_in, H, W), got {got}; "
                 "for a path, PIL image or array use unip_hub.inference.Predictor(seg).{method}(image)")


class Segmenter(ViTPyramid):
    """Backbone + neck + decode head (+ auxiliary head for training).

    Args:
        backbone: The ViT; its blocks ``layers`` are read un-normalised.
        neck: Turns the list of backbone maps into the head's input list (:class:`~unip_hub.necks.LastLayerFPN`,
            :class:`~unip_hub.necks.MultiLayerFPN`), or ``None`` to feed the backbone maps directly (linear probe).
        decode_head: List of maps -> logits at the first map's resolution.
        auxiliary_head: Training-only head on the same list (FCN on the stride-16 map), or ``None``.
        layers: 0-based blocks to read; ``None`` = the last block.
        num_classes: K.
        class_names: Optional names of the K classes.
        palette: Optional K RGB colours for rendering.
        mean: Normalisation mean on the 0-255 gray scale (used by the predictor on raw images).
        std: Normalisation standard deviation on the 0-255 gray scale.
        align_corners: ``align_corners`` of the final resize to the input size.
        input_scaling: How raw frames become the model's 8-bit gray, as the text of a
            :class:`unip_hub.data.scaling.InputScaling` (``"percentile 0.5/99.5"``, ``"window 20..120 degC"``,
            ``"8-bit"``); applied by the predictor, saved in checkpoints.
        counts_to_celsius: ``(gain, offset)`` of the 16-bit counts the model was trained on
            (``celsius = gain * count + offset``), or ``None``; applied by the predictor, saved in checkpoints.
    """

    def __init__(
        self,
        backbone: UnipViT,
        neck: nn.Module | None,
        decode_head: nn.Module,
        auxiliary_head: nn.Module | None = None,
        layers: Sequence[int] | None = None,
        *,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        mean: float = SEG_MEAN,
        std: float = SEG_STD,
        align_corners: bool = False,
        input_scaling: str = INPUT_SCALING,
        counts_to_celsius: Sequence[float] | None = None,
    ) -> None:
        super().__init__(backbone, neck, layers)
        self.decode_head = decode_head
        self.auxiliary_head = auxiliary_head
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        if palette is not None and len(palette) < num_classes:
            raise ValueError(f"palette has {len(palette)} colours for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.palette = [tuple(int(v) for v in c) for c in palette] if palette is not None else None
        self.mean, self.std = float(mean), float(std)
        self.align_corners = align_corners
        self.input_scaling = str(input_scaling)
        self.counts_to_celsius = [float(v) for v in counts_to_celsius] if counts_to_celsius is not None else None
        self.frozen_backbone = False
        self.config: dict[str, Any] = {}  # how the builder made it (arch, head, neck, img_size...), saved as meta

    # --------------------------------------------------------------------------------------------- training
    def freeze_backbone(self, freeze: bool = True) -> Segmenter:
        """Linear probing: no gradients into the backbone, which also stays in eval mode (no drop-path)."""
        self.frozen_backbone = freeze
        for p in self.backbone.parameters():
            p.requires_grad_(not freeze)
        return self.train(self.training)

    def train(self, mode: bool = True) -> Segmenter:
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    # -------------------------------------------------------------------------------------------- forward
    @property
    def patch_size(self) -> int:
        return self.backbone.patch_size

    @property
    def min_input_size(self) -> int:
        """Smallest padded side the network takes: the coarsest pyramid stride, a multiple of the patch size."""
        p = self.patch_size
        return -(-max(max(self.strides), p) // p) * p

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        p, m = self.patch_size, self.min_input_size
        h, w = x.shape[-2:]
        ph, pw = max(-h % p, m - h), max(-w % p, m - w)  # to a multiple of 16, at least the coarsest stride
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x  # zeros = mean gray after normalisation

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The heads' input: the neck's pyramid (or the backbone maps without a neck) of padded ``x``."""
        return self.pyramid(self._pad(x))

    def _upsample(self, logits: torch.Tensor, padded: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        logits = F.interpolate(logits, size=padded, mode="bilinear", align_corners=self.align_corners)
        return logits[:, :, : size[0], : size[1]]  # (B, K, H_pad, W_pad) -> (B, K, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, C_in, H, W), any H and W -> logits (B, K, H, W)."""
        size = tuple(x.shape[-2:])
        xp = self._pad(x)
        logits = self.decode_head(self.pyramid(xp))  # (B, K, H_pad/4, W_pad/4)
        return self._upsample(logits, tuple(xp.shape[-2:]), size)

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, auxiliary logits or ``None``), both (B, K, H, W) at the input size."""
        size = tuple(x.shape[-2:])
        xp = self._pad(x)
        padded = tuple(xp.shape[-2:])
        feats = self.pyramid(xp)
        logits = self._upsample(self.decode_head(feats), padded, size)
        aux = self._upsample(self.auxiliary_head(feats), padded, size) if self.auxiliary_head is not None else None
        return logits, aux

    # ------------------------------------------------------------------------------------------ inference
    def slide_logits(self, x: torch.Tensor, crop: int | tuple[int, int] = SLIDE_CROP,
                     stride: int | tuple[int, int] = SLIDE_STRIDE, batch_windows: int = 4) -> torch.Tensor:
        """mmseg slide inference of normalised images (B, C_in, H, W) -> logits (B, K, H, W), overlaps averaged."""
        return slide_logits(self, x, self.num_classes, crop, stride, batch_windows)

    def _as_batch(self, x: Any, method: str) -> torch.Tensor:
        """A normalised float tensor (C_in, H, W) / (B, C_in, H, W) -> (B, C_in, H, W) on the model's device."""
        c_in = self.backbone.in_chans
        if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.ndim in (3, 4) and x.shape[-3] == c_in):
            got = f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, torch.Tensor) \
                else f"a {type(x).__name__}"
            raise TypeError(_NOT_A_TENSOR.format(method=method, got=got))
        device = next(self.parameters()).device
        return (x if x.ndim == 4 else x[None]).to(device=device, dtype=torch.float32)

    @torch.no_grad()
    def predict_logits(self, x: torch.Tensor, options: InferenceOptions | None = None, **kwargs: Any) -> torch.Tensor:
        """Eval-mode logits (B, K, H, W) of normalised images, at their own size.

        Args:
            x: Normalised float tensor (C_in, H, W) or (B, C_in, H, W).
            options: How to run (mode, windows, rescaling); or pass its fields as keywords (``mode="slide"``,
                ``crop_size``, ``stride``, ``batch_windows``, ``scale``; see
                :class:`~unip_hub.models.slide.InferenceOptions`).

        Raises:
            TypeError: ``x`` is not such a tensor (paths, PIL images and arrays go through
                :class:`unip_hub.inference.Predictor`).
        """
        options = options if options is not None else InferenceOptions(**kwargs)
        x = self._as_batch(x, "predict_logits")
        was_training = self.training
        self.eval()
        try:
            return infer_logits(self, x, self.num_classes, options, self.align_corners)
        finally:
            self.train(was_training)

    def predict(self, x: torch.Tensor, options: InferenceOptions | None = None, **kwargs: Any) -> torch.Tensor:
        """Class-index map of normalised images: (H, W) int64 on the CPU ((B, H, W) for a batched tensor).

        Takes the arguments of :meth:`predict_logits`. For files, PIL images and arrays (8-bit, 16-bit
        radiometric, MFNet, ``.npy``) use ``unip_hub.inference.Predictor(seg).predict(image, mode="slide")``.
        """
        self._as_batch(x, "predict")  # a TypeError naming the predictor for anything but a normalised tensor
        labels = self.predict_logits(x, options, **kwargs).argmax(dim=1).cpu()
        return labels if x.ndim == 4 else labels[0]
