"""Attention-pattern analysis: NMI and distance against hand-made maps, profiles of UnipViT and timm, plots, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from unip_hub.analysis import (
    GLOBAL_MAX_NMI,
    LOCAL_MIN_NMI,
    AttentionProfile,
    attention_nmi,
    attention_profile,
    classify_pattern,
    mean_attention_distance,
    patch_distances,
    query_attention,
    select_distill_layer,
)
from unip_hub.models.vit import UnipViT


def gaussian_attention(sigma: float, side: int = 14) -> torch.Tensor:
    """A[q, k] proportional to exp(-|pos_q - pos_k|^2 / (2 sigma^2)) on a side x side grid, rows normalised."""
    d = patch_distances((side, side))
    a = torch.exp(-(d**2) / (2 * sigma**2))
    return (a / a.sum(-1, keepdim=True))[None, None]  # (1, 1, N, N)


def reference_nmi(a: np.ndarray) -> float:
    """Straight from the definition with numpy loops over non-zero entries (one head)."""
    n = a.shape[0]
    pk = a.mean(axis=0)
    mi = sum(a[q, k] / n * math.log(a[q, k] / pk[k]) for q in range(n) for k in range(n) if a[q, k] > 0)
    hk = -sum(p * math.log(p) for p in pk if p > 0)
    return mi / math.sqrt(math.log(n) * hk)


def test_identity_is_one_and_uniform_is_zero():
    n = 50
    eye = torch.eye(n).expand(2, 3, n, n)
    uni = torch.full((2, 3, n, n), 1.0 / n)
    assert torch.allclose(attention_nmi(eye), torch.ones(2), atol=1e-6)
    assert torch.allclose(attention_nmi(uni), torch.zeros(2), atol=1e-6)
    assert attention_nmi(eye).shape == (2,)
    assert attention_nmi(eye, reduce_heads=False).shape == (2, 3)


@pytest.mark.parametrize(("sigma", "expected"), [(0.5, 0.76), (1.0, 0.50), (2.0, 0.28), (4.0, 0.09)])
def test_gaussian_local_maps_match_reference_values(sigma, expected):
    value = float(attention_nmi(gaussian_attention(sigma)))
    assert abs(value - expected) < 0.02
    assert classify_pattern(value) == ("hybrid" if sigma == 4.0 else "local")


def test_matches_independent_definition_on_random_maps():
    torch.manual_seed(0)
    a = torch.softmax(torch.randn(1, 2, 12, 12, dtype=torch.float64) * 3, dim=-1)
    got = attention_nmi(a, reduce_heads=False)[0]
    for h in range(2):
        assert abs(float(got[h]) - reference_nmi(a[0, h].numpy())) < 1e-9
    # invariant to relabelling the keys (a permutation of columns)
    perm = torch.randperm(12)
    assert torch.allclose(attention_nmi(a[..., perm]), attention_nmi(a), atol=1e-9)


def test_zero_columns_give_no_nan():
    n = 10
    a = torch.zeros(1, 2, n, n)
    a[0, 0, :, :5] = 1 / 5  # half of the keys get no attention at all
    a[0, 1, :, 3] = 1.0  # every query on one key: H(K) = 0
    per_head = attention_nmi(a, reduce_heads=False)
    assert torch.isfinite(per_head).all()
    assert float(per_head[0, 0]) == pytest.approx(0.0, abs=1e-6)  # same distribution for all queries: global
    assert float(per_head[0, 1]) == pytest.approx(0.0, abs=1e-6)
    assert classify_pattern(float(per_head.mean())) == "global"
    on_cls = torch.zeros(1, 1, 10, 10)
    on_cls[..., 0] = 1.0  # all patch queries look only at the class token: no patch mass to renormalise
    assert float(mean_attention_distance(on_cls)) == 0.0


def test_refuses_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="post-softmax"):
        attention_nmi(torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, heads, N, N\)"):
        attention_nmi(torch.full((2, 5, 5), 0.2))


def test_attention_distance():
    eye = torch.eye(1 + 9)[None, None]  # class token + 3x3 patches, every query on itself
    assert float(mean_attention_distance(eye)) == pytest.approx(0.0)
    # each patch looks at the patch to its right (wrapping to the row start): distance 1 or 2
    a = torch.zeros(1, 1, 10, 10)
    a[0, 0, 0, 0] = 1
    for q in range(9):
        r, c = divmod(q, 3)
        a[0, 0, 1 + q, 1 + r * 3 + (c + 1) % 3] = 1
    assert float(mean_attention_distance(a)) == pytest.approx((6 * 1 + 3 * 2) / 9)
    # half of each patch query's mass on the class token: renormalised over patches, the distance is unchanged
    b = a.clone()
    b[0, 0, 1:] *= 0.5
    b[0, 0, 1:, 0] = 0.5
    assert float(mean_attention_distance(b)) == pytest.approx(float(mean_attention_distance(a)))
    wide = [float(mean_attention_distance(gaussian_attention(s), num_prefix_tokens=0)) for s in (0.5, 1, 2, 4)]
    assert wide == sorted(wide) and wide[0] < 0.5 < 3.5 < wide[-1]
    with pytest.raises(ValueError, match="grid"):
        mean_attention_distance(eye, grid=(2, 5))


def test_bands_and_layer_selection():
    assert classify_pattern(LOCAL_MIN_NMI) == "local"
    assert classify_pattern(LOCAL_MIN_NMI - 1e-6) == "hybrid"
    assert classify_pattern(GLOBAL_MAX_NMI) == "hybrid"
    assert classify_pattern(GLOBAL_MAX_NMI - 1e-6) == "global"
    assert select_distill_layer([0.8, 0.5, 0.2, 0.1, 0.04, 0.02]) == 4
    assert select_distill_layer([0.8, 0.5, 0.2, 0.1, 0.04, 0.02], target=0.035) == 5
    assert select_distill_layer([0.625, 0.375], target=0.5) == 1  # tie -> shallower layer
    with pytest.raises(ValueError):
        select_distill_layer([])


def _tiny_vit(depth: int = 3) -> UnipViT:
    torch.manual_seed(0)
    return UnipViT(img_size=32, embed_dim=64, depth=depth, num_heads=2, last_heads=4).eval()


def test_profile_of_unip_vit_equals_direct_computation():
    model = _tiny_vit()
    x = torch.randn(3, 3, 48, 32)
    prof = attention_profile(model, [x[:2], x[2:]], name="tiny")
    with torch.no_grad():
        maps = model.get_attention_maps(x)
    assert [r.layer for r in prof.layers] == [1, 2, 3]
    assert [r.heads for r in prof.layers] == [2, 2, 4]
    assert prof.num_images == 3 and prof.image_size == (48, 32)
    for r, a in zip(prof.layers, maps):
        assert r.nmi == pytest.approx(float(attention_nmi(a).mean()), abs=1e-6)
        assert r.distance == pytest.approx(float(mean_attention_distance(a, grid=(3, 2)).mean()), abs=1e-5)
        assert r.pattern == classify_pattern(r.nmi)
    again = AttentionProfile.from_dict(json.loads(prof.to_json()))
    assert again.nmi == prof.nmi
    assert prof.to_csv().splitlines()[0] == "layer,heads,nmi,nmi_std,distance,pattern"


def test_timm_profile_by_hooks_equals_converted_unip_vit():
    from timm.models.vision_transformer import VisionTransformer

    from unip_hub.checkpoints.teacher_layouts import convert_timm

    torch.manual_seed(1)
    net = VisionTransformer(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=0).eval()
    ours = UnipViT(img_size=32, embed_dim=64, depth=2, num_heads=2)
    ours.load_state_dict(convert_timm(net.state_dict()), strict=False)
    ours.norm.load_state_dict(net.norm.state_dict())
    x = torch.randn(2, 3, 32, 32)
    fused = [blk.attn.fused_attn for blk in net.blocks]
    a, b = attention_profile(net, x), attention_profile(ours, x)
    assert a.nmi == pytest.approx(b.nmi, abs=1e-5)
    assert a.distance == pytest.approx(b.distance, abs=1e-5)
    assert [blk.attn.fused_attn for blk in net.blocks] == fused  # the hooks' switch is undone
    # register tokens: profiled as they are, 4 prefix tokens left out of the distance
    reg = VisionTransformer(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=2, reg_tokens=3,
                            num_classes=0).eval()
    prof = attention_profile(reg, x)
    assert len(prof.layers) == 2 and all(math.isfinite(v) for v in prof.nmi + prof.distance)


def test_query_attention_and_plots(tmp_path):
    from unip_hub.analysis.plots import plot_profile, plot_query_attention

    model = _tiny_vit()
    x = torch.randn(2, 3, 64, 64)
    maps = query_attention(model, x, [1, 3], [(0.5, 0.5), (0.1, 0.9)])
    assert set(maps) == {1, 3} and maps[3].shape == (2, 2, 4, 4)
    assert torch.allclose(maps[1].sum(dim=(-2, -1)), torch.ones(2, 2), atol=0.5)  # most mass on patches, <= 1
    prof = attention_profile(model, x)
    p1 = plot_profile(prof, tmp_path / "p.png", selected=select_distill_layer(prof))
    p2 = plot_query_attention(np.zeros((64, 64), np.uint8), {k: v[0] for k, v in maps.items()},
                              [(0.5, 0.5), (0.1, 0.9)], tmp_path / "m" / "q.png", title="t")
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(f.name for f in tmp_path.rglob("*")) == ["m", "p.png", "q.png"]  # no temporary leftovers


def test_cli_attention_patterns(tmp_path, capsys):
    from unip_hub.cli import main

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(tmp_path / "imgs" / f"im{i}.png")
    torch.manual_seed(0)
    model = UnipViT(img_size=32, embed_dim=128, depth=3, num_heads=2)
    torch.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "m.pth")
    out = tmp_path / "out"
    rc = main(["attention-patterns", "--model", str(tmp_path / "m.pth"), "--images", str(tmp_path / "imgs"),
               "--out", str(out), "--img-size", "32", "--num-maps", "2", "--batch-size", "2"])
    assert rc == 0
    summary = json.loads((out / "attention_patterns.json").read_text())
    assert len(summary["layers"]) == 3 and 1 <= summary["selected_layer"] <= 3
    assert len((out / "attention_patterns.csv").read_text().splitlines()) == 4
    assert (out / "attention_patterns.png").stat().st_size > 0
    assert len(list((out / "maps").glob("*.png"))) == 2
    assert "closest to target" in capsys.readouterr().out
    assert main(["attention-patterns", "--model", str(tmp_path / "nope.pth"), "--images", str(tmp_path / "imgs"),
                 "--out", str(out)]) == 2
