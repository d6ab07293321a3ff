"""The UNIP Vision Transformer (patch 16, pre-norm, class token, absolute position embedding).

One definition serves every use: the released distilled students (``last_heads`` = 16 in the last block), the
fine-tuning backbone (standard heads, layer scale, trainable position embedding at the crop size), and the
teachers of NMI-HAD. The class does no I/O: building with weights is done by :mod:`unip_hub.hub.backbones`, and
``save_pretrained`` / ``from_pretrained`` come from :class:`unip_hub.checkpoints.hf_mixin.UnipHubMixin`.
"""

# no `from __future__ import annotations` here: torch.fx writes forward's annotations into the code of a traced
# graph, and TorchScript must be able to read them back (real types, not strings)
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from unip_hub.checkpoints.hf_mixin import UnipHubMixin
from unip_hub.compat import feature_take_indices
from unip_hub.constants import VIT_SIZES
from unip_hub.layers import Block, PatchEmbed, resize_pos_embed, sincos_pos_embed_2d

# torch.fx records the position-table lookup as one call (its grid is symbolic while tracing, the fixed table a
# buffer) and runs it at run time, so traced graphs equal eager at every input size
torch.fx.wrap("resize_pos_embed")


@dataclass(frozen=True)
class ArchSpec:
    """Width, depth and heads of one ViT size (UNIP reference, section 1)."""

    embed_dim: int
    depth: int
    num_heads: int


ARCHS: dict[str, ArchSpec] = {name: ArchSpec(s.embed_dim, s.depth, s.num_heads) for name, s in VIT_SIZES.items()}


def arch_from_shape(embed_dim: int | None, depth: int | None = None) -> str | None:
    """The :data:`ARCHS` name of a ViT of width ``embed_dim`` (and ``depth``, when given); ``None`` if none fits.

    >>> arch_from_shape(384), arch_from_shape(1024, 24), arch_from_shape(384, 6)
    ('unip_vit_small', 'unip_vit_large', None)
    """
    return next((name for name, s in ARCHS.items()
                 if s.embed_dim == embed_dim and (depth is None or s.depth == depth)), None)


class UnipViT(nn.Module, UnipHubMixin):
    """Vision Transformer with the MAE/timm state-dict names.

    Args:
        img_size: Size the position-embedding table is stored at (int or (H, W)); other multiples of the patch
            size are served by resizing the table on the fly.
        patch_size: Patch side.
        in_chans: Input channels (3, or 1 for single-channel thermal input).
        embed_dim: Token width C.
        depth: Number of blocks.
        num_heads: Heads of every block but the last.
        last_heads: Heads of the last block; ``None`` = ``num_heads``. Distilled UNIP students use 16.
        mlp_ratio: MLP hidden width relative to C.
        qkv_bias: Bias on qkv projections.
        drop_path_rate: Stochastic depth, increasing linearly to this value over the blocks.
        init_values: Layer-scale initial value, ``None`` for no layer scale.
        pos_embed_trainable: Whether the position embedding is learnt (fine-tuning) or a fixed table (pre-training).
        num_classes: Size of a linear classifier on the class token; 0 = ``forward`` returns the embedding.
        distilled_last_heads: Metadata only: the last-block head count the weights were distilled with.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        last_heads: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        init_values: float | None = None,
        pos_embed_trainable: bool = False,
        num_classes: int = 0,
        distilled_last_heads: int | None = None,
    ) -> None:
        super().__init__()
        hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if hw[0] % patch_size or hw[1] % patch_size:
            raise ValueError(f"img_size {hw} must be a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = self.num_features = self.head_hidden_size = embed_dim  # timm's names of the widths
        self.num_heads = num_heads
        self.last_heads = last_heads or num_heads
        self.distilled_last_heads = distilled_last_heads
        self.num_prefix_tokens = 1
        self.pos_grid = (hw[0] // patch_size, hw[1] // patch_size)
        self.grad_checkpointing = False

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        pos = sincos_pos_embed_2d(embed_dim, self.pos_grid)  # (1, 1 + N, C)
        if pos_embed_trainable:
            self.pos_embed = nn.Parameter(pos)
        else:  # a fixed table is state, not a parameter: every parameter gets a gradient (timm's contract)
            self.register_buffer("pos_embed", pos)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        heads = [num_heads] * (depth - 1) + [self.last_heads]
        self.blocks = nn.ModuleList(
            Block(embed_dim, h, mlp_ratio, qkv_bias=qkv_bias, drop_path=r, init_values=init_values)
            for h, r in zip(heads, rates)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]
        self.num_classes = num_classes
        self.global_pool = "token"  # timm's name for classifying the class token
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    # ----------------------------------------------------------------------------------------------- set-up
    def init_weights(self) -> None:
        """MAE initialisation: xavier-uniform linears and patch projection, normal(0.02) class token."""
        nn.init.normal_(self.cls_token, std=0.02)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def hub_arch(self) -> str | None:
        """The :data:`ARCHS` name of this model's width and depth (``None`` for a custom shape)."""
        return arch_from_shape(self.embed_dim, self.depth)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in the backward pass to save memory (timm's switch)."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Parameters that get no weight decay in the official recipes."""
        return {"pos_embed", "cls_token"}

    def get_classifier(self) -> nn.Module:
        """The classifier on the class token (``nn.Identity`` when ``num_classes`` is 0)."""
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for ``num_classes`` (0: none); ``global_pool`` may only be ``None`` or ``"token"``."""
        if global_pool not in (None, "token"):
            raise ValueError(f"UnipViT classifies its class token; global_pool={global_pool!r} is not supported "
                             "(use None or 'token', or pool forward_features' patch tokens yourself)")
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    # ----------------------------------------------------------------------------------------------- tokens
    def prepare_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C_in, H, W) -> tokens (B, 1 + H/16 * W/16, C) with class token and position embedding, and the grid."""
        grid = self.patch_embed.grid_size(x)
        x = self.patch_embed(x)  # (B, N, C)
        pos = resize_pos_embed(self.pos_embed, grid, self.pos_grid, self.num_prefix_tokens)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + pos, grid

    def _run_block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.blocks[i]
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(blk, x, use_reentrant=False)
        return blk(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens (B, 1 + N, C) of images (B, C_in, H, W)."""
        x, _ = self.prepare_tokens(x)
        for blk in self.blocks:  # iterating (not indexing) the blocks keeps TorchScript and torch.fx happy
            if torch.jit.is_scripting():
                x = blk(x)
            elif self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Class token (B, C) of ``forward_features`` output, through the classifier unless ``pre_logits``."""
        x = x[:, 0]
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class-token embedding (B, C) (or class logits when built with ``num_classes``)."""
        return self.forward_head(self.forward_features(x))

    # ---------------------------------------------------------------------------------------- intermediates
    def _take(self, indices: int | Sequence[int] | None) -> list[int]:
        if isinstance(indices, int) and not 0 < indices <= self.depth:
            raise ValueError(f"n={indices} asks for the last {indices} blocks of a {self.depth}-block model")
        if indices is not None and not isinstance(indices, int):
            bad = [i for i in indices if not -self.depth <= i < self.depth]
            if bad:
                raise ValueError(f"block indices {bad} out of range for a {self.depth}-block model (0-based)")
        take, _ = feature_take_indices(self.depth, indices)
        return list(take)

    def _collect(self, x: torch.Tensor, take: list[int], stop_early: bool = True) -> tuple[list[torch.Tensor],
                                                                                          torch.Tensor, tuple]:
        """Runs the blocks, keeping the outputs at ``take``; returns (kept, last tokens, grid)."""
        x, grid = self.prepare_tokens(x)
        kept = []
        last = max(take) + 1 if stop_early else self.depth
        for i in range(last):
            x = self._run_block(i, x)
            if i in take:
                kept.append(x)
        return kept, x, grid

    @staticmethod
    def _to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        # (B, N, C) -> (B, C, H/16, W/16)
        b, _, c = tokens.shape
        return tokens.transpose(1, 2).reshape(b, c, grid[0], grid[1]).contiguous()

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple:
        """dinov2's API: outputs of the last ``n`` blocks, or of the 0-based blocks listed in ``n``.

        Returns a tuple of patch tokens (B, N, C) -- maps (B, C, H/16, W/16) with ``reshape`` -- or of
        (patch tokens, class token (B, C)) pairs with ``return_class_token``. ``norm`` applies the final LayerNorm.
        """
        take = self._take(n)
        kept, _, grid = self._collect(x, take)
        if norm:
            kept = [self.norm(t) for t in kept]
        cls = [t[:, 0] for t in kept]
        patches = [self._to_map(t[:, 1:], grid) if reshape else t[:, 1:] for t in kept]
        return tuple(zip(patches, cls)) if return_class_token else tuple(patches)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's API: intermediate block outputs, plus the final normalised tokens unless ``intermediates_only``.

        ``output_fmt`` is ``"NCHW"`` (maps) or ``"NLC"`` (tokens); with ``return_prefix_tokens`` each entry is
        (patch output, class token (B, 1, C)).
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take = self._take(indices)
        kept, last, grid = self._collect(x, take, stop_early=stop_early or intermediates_only)
        out = []
        for t in kept:
            t = self.norm(t) if norm else t
            patches = self._to_map(t[:, 1:], grid) if output_fmt == "NCHW" else t[:, 1:]
            out.append((patches, t[:, :1]) if return_prefix_tokens else patches)
        if intermediates_only:
            return out
        return self.norm(last), out

    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drops the blocks after the last needed index (timm's API); returns the kept indices."""
        take = self._take(indices)
        self.blocks = self.blocks[: max(take) + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take

    # -------------------------------------------------------------------------------------------- attention
    def get_attention_maps(
        self, x: torch.Tensor, layers: int | Sequence[int] | None = None, pre_softmax: bool = False
    ) -> list[torch.Tensor]:
        """Attention of the 0-based ``layers`` (default all) as a list of (B, heads, N, N), N = 1 + patches.

        Post-softmax maps by default, the logits ``q k^T / sqrt(d)`` with ``pre_softmax``. The last block reports
        its own head count. Blocks after the last requested one are not run.
        """
        wanted = self._take(None if layers is None else ([layers] if isinstance(layers, int) else layers))
        x, _ = self.prepare_tokens(x)
        maps: dict[int, torch.Tensor] = {}
        for i in range(max(wanted) + 1):
            if i in wanted:
                x, logits = self.blocks[i].forward_with_logits(x)
                maps[i] = logits if pre_softmax else logits.softmax(dim=-1)
            else:
                x = self._run_block(i, x)
        return [maps[i] for i in wanted]

    def forward_attention_logits(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Pre-softmax logits (B, heads, N, N) of one 0-based ``layer`` (default the last), computed once.

        Blocks before it run with fused attention; of the block itself only the query/key path runs, and nothing
        after it -- the exact tensor NMI-HAD distils.
        """
        (idx,) = self._take([layer])
        x, _ = self.prepare_tokens(x)
        for i in range(idx):
            x = self._run_block(i, x)
        return self.blocks[idx].attention_logits(x)


def build_vit(arch: str, **kwargs) -> UnipViT:
    """Builds an untrained ViT of a named size (``unip_vit_tiny`` ... ``unip_vit_large``); ``kwargs`` override."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    spec = ARCHS[arch]
    cfg = dict(embed_dim=spec.embed_dim, depth=spec.depth, num_heads=spec.num_heads)
    cfg.update(kwargs)
    return UnipViT(**cfg)
