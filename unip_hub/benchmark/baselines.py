"""Baselines the benchmark suite compares against, on the weights and inputs of our models.

- :func:`timm_vit`: timm's ``VisionTransformer`` of the same size with our state dict loaded strictly (the names
  are identical), run eagerly as timm runs it.
- The research-style eager implementation: how the UNIP research code (timm 0.3 / mmseg 0.11, written before
  PyTorch had fused attention) computes the same results. Every block computes its attention explicitly
  (``softmax(q k^T * scale) @ v``, the (B, heads, N, N) matrix in memory); the distillation step runs the teacher's
  layer L in full and computes its logits a second time, and runs the student's last block in full although only
  its logits reach the loss; the segmenter runs sliding windows one at a time.

The UPerNet head runs mmseg's way too: its two fuse convs read the channel concatenation of their inputs, built in
memory (ours sums per-map convs instead: ``ConvBNReLU.forward_concat``).

The research-style functions reuse our modules' parameters (``blk.attn.qkv``, ``blk.mlp`` ...), so weights are
identical by construction. These are measuring sticks, not a second implementation to use: they ship with the
package so that ``unip benchmark`` compares against them from an installed wheel too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unip_hub.constants import SLIDE_CROP, SLIDE_STRIDE


# ----------------------------------------------------------------------------------------------------------- timm
def timm_vit(model: nn.Module) -> nn.Module:
    """timm's ``VisionTransformer`` with ``model``'s dimensions and weights (standard head counts only).

    Run it at the size its position table is stored at: timm resamples other grids with antialiasing (a different
    bicubic kernel), UNIP without.
    """
    from timm.models.vision_transformer import VisionTransformer

    heads = {blk.attn.num_heads for blk in model.blocks}
    if len(heads) != 1:
        raise ValueError("timm's ViT has one head count for every block; build the model with last_heads=None")
    init_values = None if isinstance(model.blocks[0].ls1, nn.Identity) else 1.0
    gh, gw = model.pos_grid
    ref = VisionTransformer(
        img_size=(gh * model.patch_size, gw * model.patch_size), patch_size=model.patch_size,
        in_chans=model.in_chans, embed_dim=model.embed_dim, depth=model.depth, num_heads=heads.pop(),
        qkv_bias=True, init_values=init_values, num_classes=0, global_pool="token", dynamic_img_size=True,
    )
    ref.load_state_dict(model.state_dict(), strict=True)
    return ref.eval()


# -------------------------------------------------------------------------------------------- research-style ViT
def explicit_attention(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """timm-0.3 attention of ``attn``'s weights on (B, N, C): returns (output (B, N, C), logits (B, H, N, N))."""
    b, n, c = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, N, D)
    logits = (q @ k.transpose(-2, -1)) * attn.scale  # (B, H, N, N)
    out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
    return attn.proj(out), logits


def explicit_logits(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The logits recomputed from (B, N, C) tokens with the full qkv projection, as a hook-style second pass."""
    b, n, c = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    return (qkv[0] @ qkv[1].transpose(-2, -1)) * attn.scale


def explicit_block(blk: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pre-norm block with explicit attention: (B, N, C) -> ((B, N, C), logits (B, H, N, N))."""
    out, logits = explicit_attention(blk.attn, blk.norm1(x))
    x = x + blk.drop_path1(blk.ls1(out))
    x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
    return x, logits


def research_tokens(vit: nn.Module, x: torch.Tensor, blocks: int | None = None) -> torch.Tensor:
    """Tokens after ``blocks`` explicit-attention blocks (default all), before the final norm: (B, 1 + N, C)."""
    x, _ = vit.prepare_tokens(x)
    for blk in vit.blocks[: blocks if blocks is not None else len(vit.blocks)]:
        x, _ = explicit_block(blk, x)
    return x


def research_forward_features(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Normalised tokens (B, 1 + N, C), every block with explicit attention."""
    return vit.norm(research_tokens(vit, x))


# -------------------------------------------------------------------------------------- research-style distillation
def research_teacher_logits(teacher: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
    """Teacher logits of 1-based ``layer``: blocks 1..L-1 explicit, block L run in full, then its logits recomputed."""
    with torch.no_grad():
        h = research_tokens(teacher, x, layer - 1)
        blk = teacher.blocks[layer - 1]
        _, first = explicit_block(blk, h)  # the full block; its logits are captured ...
        second = explicit_logits(blk.attn, blk.norm1(h))  # ... and computed a second time for the loss
        del first
    return second


def research_student_logits(student: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Student logits of its last block, every block (the last one included) run in full with explicit attention."""
    h = research_tokens(student, x, student.depth - 1)
    out, logits = explicit_block(student.blocks[-1], h)
    student.norm(out)  # the research model also returns its normalised tokens, unused by the loss
    return logits


def research_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """sum_k p_t (log p_t - log p_s) per row, averaged over batch, heads and queries, written out."""
    p_t = teacher_logits.softmax(dim=-1)
    log_p_s = student_logits.log_softmax(dim=-1)
    return (p_t * (torch.log(p_t + 1e-30) - log_p_s)).sum(dim=-1).mean()


def research_distill_loss(student: nn.Module, teacher: nn.Module, x: torch.Tensor, layer: int) -> torch.Tensor:
    """The NMI-HAD loss computed research-style (see the module docstring)."""
    return research_kl_loss(research_student_logits(student, x), research_teacher_logits(teacher, x, layer))


# ----------------------------------------------------------------------------------------- research-style segmenter
def _concat_fuse(unit: nn.Module, maps: list[torch.Tensor]) -> torch.Tensor:
    return unit(torch.cat(maps, dim=1))  # mmseg: (B, sum C_i, H, W) written out, then one conv


def research_head(head: nn.Module, feats: list[torch.Tensor]) -> torch.Tensor:
    """The decode head with mmseg's concatenations (for UPerNet; other heads run as they are)."""
    if not hasattr(type(head), "_fuse"):
        return head(feats)
    head._fuse = _concat_fuse  # an instance attribute shadows the class's per-map convs for this call only
    try:
        return head(feats)
    finally:
        del head._fuse


def research_segmenter_whole(seg: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """mmseg ``whole_inference``: explicit-attention backbone -> LL-FPN -> heads -> bilinear resize; (B, K, H, W)."""
    b, _, h, w = x.shape
    p = seg.patch_size
    xp = F.pad(x, (0, -w % p, 0, -h % p))
    tokens = research_tokens(seg.backbone, xp)  # (B, 1 + N, C), before the final norm
    gh, gw = xp.shape[-2] // p, xp.shape[-1] // p
    fmap = tokens[:, 1:].transpose(1, 2).reshape(b, -1, gh, gw)  # (B, N, C) -> (B, C, H/16, W/16)
    logits = research_head(seg.decode_head, seg.neck([fmap]))
    logits = F.interpolate(logits, size=xp.shape[-2:], mode="bilinear", align_corners=seg.align_corners)
    return logits[:, :, :h, :w]


def research_segmenter_slide(seg: nn.Module, x: torch.Tensor, crop: int = SLIDE_CROP,
                             stride: int = SLIDE_STRIDE) -> torch.Tensor:
    """mmseg ``slide_inference``: one window per forward pass, padded back into a full map, averaged."""
    b, _, h, w = x.shape
    rows = max(h - crop + stride - 1, 0) // stride + 1
    cols = max(w - crop + stride - 1, 0) // stride + 1
    preds = x.new_zeros(b, seg.num_classes, h, w)
    count = x.new_zeros(b, 1, h, w)
    for r in range(rows):
        for c in range(cols):
            y1, x1 = r * stride, c * stride
            y2, x2 = min(y1 + crop, h), min(x1 + crop, w)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            logits = research_segmenter_whole(seg, x[:, :, y1:y2, x1:x2])
            preds += F.pad(logits, (x1, w - x2, y1, h - y2))
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count


# ---------------------------------------------------------------------------------------------- timm segmenter
class TimmSegmenter(nn.Module):
    """The segmenter with timm's ViT as its backbone (same weights): timm ``forward_intermediates`` of the blocks
    ``seg.layers`` (before the final norm, NCHW) -> our neck and decode head -> bilinear resize, as mmseg does.

    timm resamples the position table with antialiasing at grids other than the stored one, so away from that
    grid its logits differ a little from ours; at the stored grid they agree to float rounding.
    """

    def __init__(self, seg: nn.Module) -> None:
        super().__init__()
        self.vit = timm_vit(seg.backbone)
        self.neck, self.decode_head = seg.neck, seg.decode_head
        self.layers, self.patch_size, self.align_corners = list(seg.layers), seg.patch_size, seg.align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.patch_size
        xp = F.pad(x, (0, -w % p, 0, -h % p))
        maps = self.vit.forward_intermediates(xp, indices=self.layers, norm=False, output_fmt="NCHW",
                                              intermediates_only=True)  # [(B, C, H/16, W/16)]
        feats = maps if self.neck is None else self.neck(list(maps))
        logits = self.decode_head(list(feats))  # (B, K, H/4, W/4)
        logits = F.interpolate(logits, size=xp.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        return logits[:, :, :h, :w]


def timm_segmenter(seg: nn.Module) -> nn.Module:
    """:class:`TimmSegmenter` of ``seg`` in eval mode."""
    return TimmSegmenter(seg).eval()
