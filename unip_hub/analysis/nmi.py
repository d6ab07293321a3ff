"""Normalised mutual information (NMI) of attention maps: the layer-selection rule of NMI-HAD (UNIP, ICLR 2025).

An attention map ``A`` (rows = queries, columns = keys, rows summing to 1) is read as a joint distribution over
(query, key) pairs: ``p(q) = 1/N``, ``p(q, k) = A[q, k] / N`` and ``p(k)`` = the column mean of ``A``. Then

    I = sum_{q,k} p(q, k) log(p(q, k) / (p(q) p(k))),   NMI = I / sqrt(H(Q) H(K)),

with ``H(Q) = log N`` and ``H(K) = -sum_k p(k) log p(k)``. NMI is computed per head and averaged over heads.

* NMI near 1: **local** attention, each query looks at its own neighbourhood (identity attention gives exactly 1).
* NMI near 0: **global** attention, every query looks at the same keys (uniform attention gives exactly 0).
* In between: **hybrid**. NMI-HAD distils the teacher layer whose NMI is closest to 0.09.

Sanity values (Gaussian-local attention on a 14 x 14 grid, sigma in patches): 0.5 -> 0.763, 1 -> 0.499,
2 -> 0.275, 4 -> 0.091 (tested in ``tests/test_nmi.py``).

Numerics: the sums run in float64; an ``eps`` inside the logarithms makes keys that no query attends to (a column
of zeros) contribute 0 instead of NaN, and the denominator is floored at ``eps`` (all queries on one key: NMI = 0).
The result is clipped to [0, 1], removing rounding excursions of order ``eps``.
"""

from __future__ import annotations

import math

import torch

NMI_EPS = 1e-12
"""Added inside the logarithms and used as the floor of the denominator."""


def check_attention(attn: torch.Tensor, name: str = "attn", atol: float = 1e-2) -> None:
    """Raises ``ValueError`` unless ``attn`` is (B, heads, N, N), non-negative, with rows summing to 1."""
    if attn.ndim != 4 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"{name} must be post-softmax attention of shape (B, heads, N, N), got {tuple(attn.shape)}")
    if not attn.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {attn.dtype}")
    if attn.numel() == 0:
        raise ValueError(f"{name} is empty: {tuple(attn.shape)}")
    rows = attn.double().sum(dim=-1)
    if bool((attn < 0).any()) or not torch.allclose(rows, torch.ones_like(rows), atol=atol):
        raise ValueError(f"{name} is not a post-softmax attention map (negative entries or rows not summing to 1); "
                         "pass attention probabilities, e.g. logits.softmax(-1), not the pre-softmax logits")


def attention_nmi(attn: torch.Tensor, eps: float = NMI_EPS, reduce_heads: bool = True) -> torch.Tensor:
    """NMI between queries and keys of post-softmax attention maps.

    Args:
        attn: Attention probabilities (B, heads, N, N), rows summing to 1 (class token included or not, as given).
        eps: Numerical floor, see the module docstring.
        reduce_heads: Average over heads (the reference rule); ``False`` returns per-head values.

    Returns:
        (B,) NMI per image, or (B, heads) with ``reduce_heads=False``; float32 (float64 for float64 input).

    Raises:
        ValueError: ``attn`` is not a batch of attention maps (wrong shape, negative, rows not summing to 1).
    """
    check_attention(attn)
    a = attn.double()  # (B, H, N, N)
    n = a.shape[-1]
    p_k = a.mean(dim=-2)  # (B, H, N): column means
    # I = sum_{q,k} (A/N) log(A / p(k)), since p(q,k) / p(q) = A[q,k]
    log_ratio = torch.log(a + eps) - torch.log(p_k + eps).unsqueeze(-2)  # (B, H, N, N)
    mi = (a * log_ratio).sum(dim=(-2, -1)) / n  # (B, H)
    h_k = (-(p_k * torch.log(p_k + eps)).sum(dim=-1)).clamp_min(0.0)  # (B, H)
    h_q = math.log(n) if n > 1 else 0.0
    nmi = (mi / torch.sqrt(h_q * h_k).clamp_min(eps)).clamp(0.0, 1.0)  # (B, H)
    if reduce_heads:
        nmi = nmi.mean(dim=-1)  # (B,)
    return nmi.to(torch.float64 if attn.dtype == torch.float64 else torch.float32)
