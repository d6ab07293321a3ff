"""An independent, straightforward ViT forward pass (explicit softmax attention) used as ground truth in tests.

Written from the reference facts with plain ``torch.nn.functional`` calls on a state dict; it shares no code
with ``unip_hub``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reference_tokens(sd: dict, x: torch.Tensor, heads: list[int], final_norm: bool = True) -> torch.Tensor:
    """Tokens (B, 1 + N, C) of images ``x`` for the weights ``sd``; ``heads[i]`` = heads of block i."""
    w = sd["patch_embed.proj.weight"]
    c = w.shape[0]
    feats = F.conv2d(x, w, sd["patch_embed.proj.bias"], stride=16)  # (B, C, h, w)
    b, _, h, wd = feats.shape
    tokens = feats.flatten(2).transpose(1, 2)
    pos = sd["pos_embed"]
    side = math.isqrt(pos.shape[1] - 1)
    grid = pos[:, 1:].reshape(1, side, side, c).permute(0, 3, 1, 2)
    if (side, side) != (h, wd):
        grid = F.interpolate(grid, size=(h, wd), mode="bicubic", align_corners=False)
    pos = torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
    t = torch.cat([sd["cls_token"].expand(b, -1, -1), tokens], dim=1) + pos
    n = t.shape[1]
    for i, nh in enumerate(heads):
        p = f"blocks.{i}."
        y = F.layer_norm(t, (c,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        qkv = y @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]
        q, k, v = qkv.reshape(b, n, 3, nh, c // nh).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // nh), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, n, c) @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
        t = t + o * sd.get(p + "ls1.gamma", 1.0)
        y = F.layer_norm(t, (c,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        y = F.gelu(y @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
        t = t + (y @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]) * sd.get(p + "ls2.gamma", 1.0)
    if final_norm:
        t = F.layer_norm(t, (c,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    return t


def reference_logits(sd: dict, x: torch.Tensor, heads: list[int], layer: int) -> torch.Tensor:
    """Pre-softmax attention logits (B, heads, N, N) of 0-based block ``layer``."""
    c = sd["cls_token"].shape[-1]
    t = reference_tokens(sd, x, heads[:layer], final_norm=False)
    p = f"blocks.{layer}."
    y = F.layer_norm(t, (c,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
    b, n, _ = y.shape
    nh = heads[layer]
    qkv = y @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]
    q, k, _ = qkv.reshape(b, n, 3, nh, c // nh).permute(2, 0, 3, 1, 4)
    return q @ k.transpose(-1, -2) / math.sqrt(c // nh)
