"""UNIP detectors: every head trains a step and detects, labels 0..K-1, bad input, files, parameter groups."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("torchvision")

from unip_hub.checkpoints import CheckpointError
from unip_hub.detection import (
    HEADS,
    create_detector,
    detector_param_groups,
    load_detector,
    save_detector,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one intra-op thread (tests/conftest.py)
TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=64)
# small proposal / candidate budgets: a step takes well under a second on a CPU
FAST = {"faster_rcnn": dict(rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=30, rpn_pre_nms_top_n_test=100,
                            rpn_post_nms_top_n_test=30, box_batch_size_per_image=16),
        "retinanet": dict(topk_candidates=50), "fcos": dict(topk_candidates=50)}
FAST["mask_rcnn"] = FAST["faster_rcnn"]
CHANNELS = {"fcos": 64}  # FCOS's GroupNorm(16) needs more than one value per group on the 1x1 P7 map




def tiny(head: str = "faster_rcnn", num_classes: int = 2, **kw):
    torch.manual_seed(0)
    kw = {"min_size": 64, "max_size": 96, "out_channels": CHANNELS.get(head, 32), "detector_kwargs": FAST[head],
          **TINY, **kw}
    return create_detector("unip_vit_tiny", head=head, num_classes=num_classes, **kw)


def scene(h: int = 64, w: int = 90):
    """One image (not a multiple of 32 wide) with two objects of classes 0 and 1, and their masks."""
    image = torch.rand(3, h, w)
    masks = torch.zeros(2, h, w, dtype=torch.uint8)
    masks[0, 10:30, 5:25] = 1
    masks[1, 30:50, 40:80] = 1
    return image, {"boxes": torch.tensor([[5.0, 10, 25, 30], [40, 30, 80, 50]]), "labels": torch.tensor([0, 1]),
                   "masks": masks}


@pytest.mark.parametrize("head,box_head", [(h, "default") for h in HEADS] + [("faster_rcnn", "4conv1fc")])
def test_every_head_trains_a_step_and_detects(head, box_head):
    det = tiny(head, box_head=box_head)
    image, target = scene()
    opt = torch.optim.AdamW(detector_param_groups(det, lr=1e-3))
    losses = det([image], [target])
    assert losses and all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert det.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    unused = [n for n, p in det.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []  # every trainable parameter is used (DDP needs no find_unused_parameters)
    opt.step()
    det.eval()
    det.score_thresh = 0.0
    with torch.no_grad():
        out = det(torch.stack([image, image]))  # a (B, 3, H, W) batch is accepted too
    assert len(out) == 2
    keys = {"boxes", "scores", "labels"} | ({"masks"} if head == "mask_rcnn" else set())
    assert set(out[0]) == keys and len(out[0]["boxes"]) > 0
    boxes, labels = out[0]["boxes"], out[0]["labels"]
    assert boxes.shape[1] == 4 and boxes[:, 2].max() <= 90 and boxes[:, 3].max() <= 64  # input pixels
    assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() <= 1
    if head == "mask_rcnn":
        assert out[0]["masks"].shape[1:] == (1, 64, 90)


@pytest.mark.parametrize("head", ["faster_rcnn", "retinanet"])
def test_one_class_is_label_zero(head):
    """torchvision's two-stage heads call the first object class 1 (0 = background); our API calls it 0."""
    det = tiny(head, num_classes=1).eval()
    det.score_thresh = 0.0
    with torch.no_grad():
        out = det([scene()[0]])[0]
    assert len(out["labels"]) > 0 and out["labels"].unique().tolist() == [0]


def test_thresholds_reach_torchvision():
    det = tiny("faster_rcnn")
    det.score_thresh, det.nms_thresh, det.detections_per_img = 0.3, 0.4, 7
    rh = det.detector.roi_heads
    assert (rh.score_thresh, rh.nms_thresh, rh.detections_per_img) == (0.3, 0.4, 7)
    fcos = tiny("fcos")
    fcos.detections_per_img = 5
    assert fcos.detector.detections_per_img == 5 and fcos.detections_per_img == 5


def test_bad_input_gives_one_line_errors():
    det = tiny("faster_rcnn")
    image, target = scene()
    with pytest.raises(ValueError, match=r"labels must be 0\.\.1"):
        det([image], [{**target, "labels": torch.tensor([0, 2])}])
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        det([image], [{**target, "labels": torch.tensor([0])}])
    with pytest.raises(ValueError, match="needs targets"):
        det([image])
    with pytest.raises(ValueError, match=r"image 0: expected a float \(3, H, W\)"):
        det([torch.rand(1, 64, 64)], [target])
    with pytest.raises(ValueError, match="mask_rcnn needs 'masks'"):
        tiny("mask_rcnn")([image], [{k: v for k, v in target.items() if k != "masks"}])
    with pytest.raises(ValueError, match="head must be one of"):
        create_detector("unip_vit_tiny", head="yolo", num_classes=2)
    with pytest.raises(ValueError, match="two-stage"):
        create_detector("unip_vit_tiny", head="retinanet", box_head="4conv1fc", num_classes=2)


def test_negative_image_without_boxes_trains():
    det = tiny("faster_rcnn")
    losses = det([scene()[0]], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    assert torch.isfinite(sum(losses.values()))


def test_backbone_weights_load(official_tiny):
    path, sd = official_tiny
    det = create_detector("unip_vit_tiny", num_classes=2, weights=str(path), img_size=64)
    torch.testing.assert_close(det.backbone.blocks[3].mlp.fc1.weight, sd["blocks.3.mlp.fc1.weight"])
    assert det.training


@pytest.mark.parametrize("name", ["det.pth", "det.safetensors", "det_hf"])
def test_save_load_round_trip(tmp_path, name):
    det = tiny("faster_rcnn", box_head="4conv1fc", class_names=["person", "car"], counts_to_celsius=[0.04, -273.15],
               window_size=2, global_blocks=[1],
               input_scaling="window 20..120 degC").eval()
    det.score_thresh = 0.0
    x = [scene()[0]]
    with torch.no_grad():
        ref = det(x)[0]
    path = save_detector(det, tmp_path / name, meta={"epoch": 3})
    got = load_detector(path)
    assert not got.training and got.class_names == ["person", "car"] and got.config == det.config
    assert got.input_scaling == "window 20..120 degC" and got.counts_to_celsius == [0.04, -273.15]
    got.score_thresh = 0.0
    with torch.no_grad():
        out = got(x)[0]
    torch.testing.assert_close(out["boxes"], ref["boxes"])
    assert out["labels"].tolist() == ref["labels"].tolist()
    if name == "det.pth":  # plain torch.load(weights_only=True) reads it
        assert torch.load(path, weights_only=True)["meta"]["epoch"] == 3
    if name == "det_hf":
        assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
        assert json.loads((path / "config.json").read_text())["head"] == "faster_rcnn"


def test_load_refuses_other_files(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a UNIP detector checkpoint"):
        load_detector(tmp_path / "other.pth")
    det = tiny("retinanet")
    path = save_detector(det, tmp_path / "r.pth")
    obj = torch.load(path, weights_only=True)
    obj["meta"]["num_classes"] = 5
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_detector(path)


def test_param_groups_follow_the_recipe():
    det = tiny("faster_rcnn", box_head="4conv1fc")
    groups = detector_param_groups(det, lr=1e-4, weight_decay=0.1, layer_decay=0.7)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len([p for p in det.parameters() if p.requires_grad])
    where = {id(p): g for g in groups for p in g["params"]}
    vit, depth = det.backbone, det.backbone.depth
    assert where[id(vit.pos_embed)]["weight_decay"] == 0.0 and where[id(vit.pos_embed)]["layer_id"] == 0
    assert where[id(vit.blocks[0].norm1.weight)]["weight_decay"] == 0.0
    qkv = where[id(vit.blocks[0].attn.qkv.weight)]
    assert qkv["weight_decay"] == 0.1 and qkv["lr"] == pytest.approx(1e-4 * 0.7 ** depth)
    head = where[id(det.detector.roi_heads.box_predictor.cls_score.weight)]
    assert head["lr"] == pytest.approx(1e-4) and head["weight_decay"] == 0.1
    norm = next(m for m in det.detector.roi_heads.box_head.modules() if type(m).__name__ == "LayerNorm2d")
    assert where[id(norm.weight)]["weight_decay"] == 0.0


def test_torch_hub_entry_points(tmp_path):
    from pathlib import Path

    from helpers.hub import hub_entry_points

    from unip_hub.detection.models import HUB_ENTRY_POINTS

    repo = Path(__file__).resolve().parents[1]
    assert set(HUB_ENTRY_POINTS) <= set(hub_entry_points(repo))
    det = torch.hub.load(str(repo), "unip_t_faster_rcnn", source="local", num_classes=2, pretrained=False, **TINY)
    assert det.config["arch"] == "unip_vit_tiny" and det.num_classes == 2


def test_benchmark_detection_group_runs_on_a_tiny_config():
    from unip_hub.benchmark import BenchConfig, run_benchmark
    from unip_hub.benchmark.config import GROUPS

    assert "detection" in GROUPS  # `unip benchmark --groups detection`
    report = run_benchmark(BenchConfig(groups=("detection",), quick=True, memory=False), progress=False)
    (case,) = report["results"]
    assert case["group"] == "detection" and list(case["variants"]) == ["ours", "torchvision"]
    assert case["variants"]["torchvision"]["ours_speedup"] > 0  # a same-run ratio (its value is not a test)
    assert case["meta"]["baseline"] == "torchvision fasterrcnn_resnet50_fpn_v2"
    assert {"proposals_ours", "proposals_torchvision", "detections_ours"} <= set(case["checks"])


def test_package_reexports_what_each_module_exports():
    """``# exports:`` at the top of each module of unip_hub/detection/ is what the package re-exports, lazily."""
    import importlib
    from pathlib import Path

    import unip_hub.detection as package

    declared = {}
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        if first and first[0].startswith("# exports:"):
            declared[f"unip_hub.detection.{path.stem}"] = {n.strip() for n in first[0][10:].split(",") if n.strip()}
    lazy = {module: set(names) for module, names in package._LAZY.items() if module in declared}
    assert lazy == declared
    for module, names in package._LAZY.items():
        for name in names:
            assert getattr(package, name) is getattr(importlib.import_module(module), name)


def _windowed_reference(vit, x, window, global_blocks):
    """Tokens of a windowed ViT computed one window at a time (zero-padded grid, class token skipping windows)."""
    t, (h, w) = vit.prepare_tokens(x)
    c = t.shape[-1]
    for i, blk in enumerate(vit.blocks):
        if i in global_blocks:
            t = blk(t)
            continue
        hp, wp = -(-h // window) * window, -(-w // window) * window
        g = torch.zeros(t.shape[0], hp, wp, c)
        g[:, :h, :w] = t[:, 1:].reshape(-1, h, w, c)
        out = torch.empty_like(g)
        for r in range(0, hp, window):
            for s in range(0, wp, window):
                win = g[:, r:r + window, s:s + window].reshape(-1, window * window, c)
                out[:, r:r + window, s:s + window] = blk(win).reshape(-1, window, window, c)
        t = torch.cat([t[:, :1], out[:, :h, :w].reshape(-1, h * w, c)], dim=1)
    return t


@pytest.mark.parametrize("hw", [(64, 96), (80, 96)])  # a 4 x 6 grid of 2 x 2 windows, and a padded 5 x 6 one
def test_window_attention_matches_a_window_by_window_reference(hw):
    det = tiny("faster_rcnn", window_size=2, global_blocks=[1]).eval()
    plain = tiny("faster_rcnn").eval().backbone  # the same weights, no hooks
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        got = det.backbone.get_intermediate_layers(x, n=[1], norm=False)[0]  # patch tokens after the last block
        ref = _windowed_reference(plain, x, 2, {1})[:, 1:]
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        assert (plain.get_intermediate_layers(x, n=[1], norm=False)[0] - got).abs().max() > 1e-3  # windows matter
    assert det.config["window_size"] == 2 and det.config["global_blocks"] == [1]
