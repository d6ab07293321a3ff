"""Attention-pattern analysis (UNIP, ICLR 2025, section 3): NMI, attention distance, per-layer profiles, plots.

>>> from unip_hub.analysis import attention_profile, select_distill_layer
>>> profile = attention_profile(teacher, images)        # per-layer NMI / distance / local-hybrid-global
>>> layer = select_distill_layer(profile, target=0.09)  # 1-based layer to distil

Plots live in :mod:`unip_hub.analysis.plots` (matplotlib, imported lazily).
"""

from unip_hub.analysis.distance import mean_attention_distance, patch_distances
from unip_hub.analysis.layer_patterns import (
    DEFAULT_TARGET_NMI,
    GLOBAL_MAX_NMI,
    LOCAL_MIN_NMI,
    AttentionProfile,
    LayerPattern,
    attention_profile,
    classify_pattern,
    query_attention,
    select_distill_layer,
    stream_attention,
)
from unip_hub.analysis.nmi import NMI_EPS, attention_nmi

__all__ = [
    "DEFAULT_TARGET_NMI",
    "GLOBAL_MAX_NMI",
    "LOCAL_MIN_NMI",
    "NMI_EPS",
    "AttentionProfile",
    "LayerPattern",
    "attention_nmi",
    "attention_profile",
    "classify_pattern",
    "mean_attention_distance",
    "patch_distances",
    "query_attention",
    "select_distill_layer",
    "stream_attention",
]
