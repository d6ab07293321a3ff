"""Segmenter: a UNIP ViT, a feature pyramid and decode heads (SAM-style composition of given modules).

Data flow (reference section 4): blocks ``layers`` of the backbone, patch tokens **before** the final norm, as
(B, C, H/16, W/16) maps -> neck (LL-FPN: strides 4/8/16/32) -> decode head -> logits at stride 4 -> bilinear
resize to the input size. Inputs of any size are padded at the bottom/right to a multiple of 16 with 0 (the
mean gray after normalisation, as mmseg pads) and the logits are cropped back. The class does no file I/O:
:func:`unip_hub.create_segmenter` builds it and loads weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unip_hub.data.transforms import SEG_MEAN, SEG_STD
from unip_hub.inference.slide import slide_logits
from unip_hub.models.pyramid import ViTPyramid
from unip_hub.models.vit import UnipViT

ImageLike = str | os.PathLike | np.ndarray | torch.Tensor | Any  # Any: PIL.Image.Image (not imported here)


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
        mean: Normalisation mean on the 0-255 gray scale (for :meth:`predict` on raw images).
        std: Normalisation standard deviation on the 0-255 gray scale.
        align_corners: ``align_corners`` of the final resize to the input size.
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

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        ph, pw = -x.shape[-2] % p, -x.shape[-1] % p
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
    def slide_logits(self, x: torch.Tensor, crop: int | tuple[int, int] = 512, stride: int | tuple[int, int] = 341,
                     batch_windows: int = 4) -> torch.Tensor:
        """mmseg slide inference of normalised images (B, C_in, H, W) -> logits (B, K, H, W), overlaps averaged."""
        return slide_logits(self, x, self.num_classes, crop, stride, batch_windows)

    def prepare(self, image: ImageLike) -> torch.Tensor:
        """Any supported image -> normalised model input (B, C_in, H, W) on the model's device.

        A floating tensor (C_in, H, W) or (B, C_in, H, W) is taken as already normalised. Anything else (path,
        numpy array, PIL image, integer or 2-D tensor) is read by :func:`unip_hub.data.readers.read_thermal` --
        8-bit, 16-bit radiometric, 4-channel MFNet, RGB, ``.npy`` -- and normalised with ``mean``/``std``.
        """
        device = next(self.parameters()).device
        c_in = self.backbone.in_chans
        if isinstance(image, torch.Tensor) and image.is_floating_point() and image.ndim in (3, 4) \
                and image.shape[-3] == c_in:
            x = image if image.ndim == 4 else image[None]
            return x.to(device=device, dtype=torch.float32)
        from unip_hub.data.readers import read_thermal

        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        gray = read_thermal(image)  # (H, W) uint8
        x = (torch.from_numpy(gray).float() - self.mean) / self.std  # (H, W)
        return x[None, None].expand(1, c_in, *gray.shape).contiguous().to(device)  # (1, C_in, H, W)

    @torch.no_grad()
    def predict_logits(
        self,
        image: ImageLike,
        mode: str = "whole",
        crop_size: int | tuple[int, int] = 512,
        stride: int | tuple[int, int] = 341,
        batch_windows: int = 4,
        scale: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Eval-mode logits (B, K, H, W) at the image's own size (see :meth:`predict` for the arguments)."""
        if mode not in ("whole", "slide"):
            raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
        x = self.prepare(image)
        size = tuple(x.shape[-2:])
        if scale is not None:  # the test pipeline: fit (long, short) keeping the aspect ratio, resize back after
            long_edge, short_edge = max(scale), min(scale)
            f = min(long_edge / max(size), short_edge / min(size))
            target = (int(size[0] * f + 0.5), int(size[1] * f + 0.5))
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        was_training = self.training
        self.eval()
        try:
            logits = self(x) if mode == "whole" else self.slide_logits(x, crop_size, stride, batch_windows)
        finally:
            self.train(was_training)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)
        return logits

    def predict(
        self,
        image: ImageLike,
        mode: str = "whole",
        crop_size: int | tuple[int, int] = 512,
        stride: int | tuple[int, int] = 341,
        batch_windows: int = 4,
        scale: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Class-index map of one image: (H, W) int64 on the CPU ((B, H, W) for a batched tensor).

        Args:
            image: Path, PIL image, numpy array (any format of :mod:`unip_hub.data.readers`), or tensor (a
                floating (C_in, H, W) / (B, C_in, H, W) tensor is taken as already normalised).
            mode: ``"whole"`` (one pass, padded to a multiple of 16) or ``"slide"`` (mmseg sliding windows).
            crop_size: Window side for ``"slide"`` (UNIP: 512).
            stride: Window step for ``"slide"`` (UNIP: 341).
            batch_windows: Windows per forward pass for ``"slide"``.
            scale: ``(long, short)`` edge to rescale to first (UNIP's test pipeline: (2048, 512)); the logits are
                resized back, so the map always has the input's size. ``None`` = native resolution.
        """
        batched = isinstance(image, torch.Tensor) and image.ndim == 4
        labels = self.predict_logits(image, mode, crop_size, stride, batch_windows, scale).argmax(dim=1).cpu()
        return labels if batched else labels[0]
