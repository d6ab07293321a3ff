"""Teachers: official layouts (MAE, iBOT, DINO, DeiT), timm ViTs, truncation, and refusal of wrong files."""

from __future__ import annotations

import pytest
import torch

from unip_hub.checkpoints import CheckpointError
from unip_hub.checkpoints.teacher_layouts import detect_teacher_format, teacher_state_dict
from unip_hub.hub.teachers import load_teacher as load_vit
from unip_hub.models.vit import UnipViT
from unip_hub.train.distill import load_teacher


def _encoder(seed: int = 0, depth: int = 3, width: int = 128) -> dict[str, torch.Tensor]:
    """A ViT encoder state dict (2 heads at width 128) with non-trivial values everywhere."""
    torch.manual_seed(seed)
    m = UnipViT(img_size=32, embed_dim=width, depth=depth, num_heads=width // 64)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return {k: v.clone() for k, v in m.state_dict().items()}


def _mae(sd):
    dec = {"mask_token": torch.zeros(1, 1, 64), "decoder_embed.weight": torch.randn(64, 128),
           "decoder_blocks.0.attn.qkv.weight": torch.randn(192, 64), "decoder_norm.weight": torch.ones(64),
           "decoder_pred.weight": torch.randn(768, 64), "decoder_pos_embed": torch.zeros(1, 5, 64)}
    return {"model": {**sd, **dec}}


def _ibot(sd, other):
    head = {"head.mlp.0.weight": torch.randn(8, 128), "head.last_layer.weight_g": torch.ones(4, 1)}
    return {"teacher": {**{f"backbone.{k}": v for k, v in sd.items()}, "backbone.masked_embed": torch.zeros(128),
                        **head},
            "student": {**{f"module.backbone.{k}": v for k, v in other.items()}, **head}, "epoch": 3}


def _deit(sd, distilled=False):
    out = {**sd, "head.weight": torch.randn(10, 128), "head.bias": torch.zeros(10)}
    if distilled:
        pos = sd["pos_embed"]
        out |= {"dist_token": torch.randn(1, 1, 128), "head_dist.weight": torch.randn(10, 128),
                "pos_embed": torch.cat([pos[:, :1], torch.randn(1, 1, 128), pos[:, 1:]], dim=1)}
    return {"model": out}


def _same_encoder(model: UnipViT, sd: dict, layer: int) -> None:
    own = model.state_dict()
    assert len(model.blocks) == layer
    for k, v in own.items():
        if k.startswith("norm."):
            continue
        assert torch.equal(v, sd[k]), k


@pytest.mark.parametrize("fmt", ["mae", "ibot", "dino", "deit"])
def test_official_layouts_load_truncated(tmp_path, fmt):
    sd, other = _encoder(0), _encoder(1)
    obj = {"mae": lambda: _mae(sd), "ibot": lambda: _ibot(sd, other), "dino": lambda: dict(sd),
           "deit": lambda: _deit(sd)}[fmt]()
    torch.save(obj, tmp_path / "t.pth")
    assert detect_teacher_format(obj) == fmt
    teacher = load_teacher(tmp_path / "t.pth", arch=None, layer=2)
    _same_encoder(teacher, sd, 2)  # the iBOT teacher branch, not the student
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    full = UnipViT(img_size=32, embed_dim=128, depth=3, num_heads=2)
    full.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(teacher.forward_attention_logits(x, 1), full.forward_attention_logits(x, 1), atol=1e-5)


def test_distilled_deit_refused_unless_token_dropped(tmp_path):
    sd = _encoder()
    torch.save(_deit(sd, distilled=True), tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="dist_token"):
        load_teacher(tmp_path / "d.pth", arch=None, layer=3)
    teacher = load_teacher(tmp_path / "d.pth", arch=None, layer=3, drop_dist_token=True)
    assert torch.equal(teacher.pos_embed, sd["pos_embed"])


def test_wrong_layouts_are_refused_with_names(tmp_path):
    sd = _encoder()
    # Hugging Face names: nothing matches, every encoder weight is reported missing
    hf = {k.replace("blocks.", "encoder.layer."): v for k, v in sd.items()}
    torch.save({"model": hf}, tmp_path / "hf.pth")
    with pytest.raises(CheckpointError, match=r"encoder|ViT"):
        load_teacher(tmp_path / "hf.pth", arch=None, layer=2)
    # one block weight missing: named in the error
    gap = {k: v for k, v in sd.items() if k != "blocks.1.attn.qkv.weight"}
    torch.save(gap, tmp_path / "gap.pth")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn\.qkv\.weight"):
        load_teacher(tmp_path / "gap.pth", arch=None, layer=2)
    # ... but a gap after the distilled layer does not matter
    gap3 = {k: v for k, v in sd.items() if not k.startswith("blocks.2.")} | {"blocks.2.norm1.weight": sd[
        "blocks.2.norm1.weight"]}
    torch.save(gap3, tmp_path / "gap3.pth")
    assert len(load_teacher(tmp_path / "gap3.pth", arch=None, layer=2).blocks) == 2
    # ... and does when that block is distilled
    with pytest.raises(CheckpointError, match=r"blocks\.2\.attn\.qkv\.weight"):
        load_teacher(tmp_path / "gap3.pth", arch=None, layer=3)
    # leftover keys of another architecture (relative position bias) are not ignored
    torch.save({**sd, "blocks.0.attn.relative_position_bias_table": torch.zeros(3, 2)}, tmp_path / "rel.pth")
    with pytest.raises(CheckpointError, match="relative_position_bias_table"):
        load_teacher(tmp_path / "rel.pth", arch=None, layer=2)
    # the wrong size
    torch.save(sd, tmp_path / "ok.pth")
    with pytest.raises(CheckpointError, match="vit_large"):
        load_teacher(tmp_path / "ok.pth", arch="vit_large", layer=2)
    with pytest.raises(ValueError, match="out of range"):
        load_teacher(tmp_path / "ok.pth", arch=None, layer=4)


def test_layer_beyond_file_depth_refused(tmp_path):
    from unip_hub.checkpoints.teacher_layouts import load_teacher_state_dict

    sd = _encoder(depth=2)
    torch.save(sd, tmp_path / "two.pth")
    with pytest.raises(ValueError, match="out of range"):
        load_teacher(tmp_path / "two.pth", arch=None, layer=3)
    with pytest.raises(CheckpointError, match="has 2 encoder blocks"):
        load_teacher_state_dict(UnipViT(img_size=32, embed_dim=128, depth=3, num_heads=2), sd, 3)


@pytest.mark.slow
def test_timm_teacher_and_full_model(tmp_path):
    import timm

    torch.manual_seed(0)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    torch.manual_seed(0)
    teacher = load_teacher("timm:vit_tiny_patch16_224", layer=4, pretrained=False)
    assert len(teacher.blocks) == 4 and teacher.blocks[0].attn.num_heads == 3
    ref_sd = ref.state_dict()
    for k, v in teacher.state_dict().items():
        if not k.startswith("norm."):
            assert torch.equal(v, ref_sd[k]), k
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref_logits = []
        ref.blocks[3].attn.fused_attn = False
        h = ref.blocks[3].attn.attn_drop.register_forward_hook(lambda m, i, o: ref_logits.append(o))
        ref.forward_features(x)
        h.remove()
        assert torch.allclose(teacher.forward_attention_logits(x, 3).softmax(-1), ref_logits[0], atol=1e-5)
    # a full (untruncated) model keeps its final norm
    full = load_vit("timm:vit_tiny_patch16_224", pretrained=False)
    assert len(full.blocks) == 12
    from timm.models.vision_transformer import VisionTransformer

    from unip_hub.checkpoints.teacher_layouts import convert_timm

    reg = VisionTransformer(img_size=32, embed_dim=64, depth=1, num_heads=1, reg_tokens=2, qk_norm=True)
    with pytest.raises(CheckpointError, match=r"q_norm.*reg_token"):
        convert_timm(reg.state_dict())
    with pytest.raises(ValueError, match="not a class-token ViT"):
        load_vit("timm:vit_wee_patch16_reg1_gap_256", pretrained=False)


def test_official_student_file_as_full_model(official_tiny):
    path, sd = official_tiny
    model = load_vit(path, last_heads=16)
    assert model.blocks[-1].attn.num_heads == 16
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    assert teacher_state_dict({"model": sd}, "unip").keys() == sd.keys()


def test_one_teacher_loader_under_its_names():
    from unip_hub.hub import teachers

    assert teachers.load_vit is teachers.load_teacher is load_teacher
