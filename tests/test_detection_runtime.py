"""Every detection head exports to ONNX and runs in onnxruntime with the eager model's detections."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from unip_hub.detection import HEADS, create_detector
from unip_hub.detection.runtime import (
    ExportError,
    OnnxDetector,
    detection_difference,
    export_detector_onnx,
    quantize_detector_onnx,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one intra-op thread (tests/conftest.py)
TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=64)




def distinct_scores(head: str):
    """A tiny detector whose class scores differ clearly between locations (untrained heads score every anchor at
    the prior, and ties make the kept set a matter of rounding)."""
    torch.manual_seed(0)
    det = create_detector("unip_vit_tiny", head=head, num_classes=2, min_size=64, max_size=96,
                          out_channels=64 if head == "fcos" else 32, class_names=["person", "car"], **TINY).eval()
    with torch.no_grad():
        for name, p in det.detector.named_parameters():
            if name.endswith(("cls_logits.weight", "cls_score.weight")):
                p.normal_(0, 0.5)
            elif name.endswith("cls_logits.bias"):
                p.zero_()
    det.detections_per_img = 20
    return det


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """head -> (eager detector, OnnxDetector), each exported once for the module."""
    folder, done = tmp_path_factory.mktemp("onnx"), {}

    def get(head: str):
        if head not in done:
            det = distinct_scores(head)
            # the export's own check (ORT vs eager on the example image) once; the tests below compare anyway
            path = export_detector_onnx(det, folder / f"{head}.onnx", size=(64, 96), check=head == "faster_rcnn")
            done[head] = det, OnnxDetector(path)
        return done[head]

    return get


@pytest.mark.parametrize("head", HEADS)
def test_onnx_detector_matches_eager(exported, head):
    det, run = exported(head)
    assert run.class_names == ["person", "car"] and run.num_classes == 2
    assert run.input_scaling == det.input_scaling and run.config["head"] == head
    gen = torch.Generator().manual_seed(1)
    for hw in [(64, 96), (80, 70)]:  # the export size and another one (dynamic H, W)
        image = torch.rand(3, *hw, generator=gen)
        with torch.no_grad():
            ref = det([image])[0]
        got = run([image])[0]
        assert set(got) == set(ref) and len(ref["boxes"]) > 0
        assert len(got["boxes"]) == len(ref["boxes"]) and got["labels"].dtype == torch.int64
        assert detection_difference(ref, got) < 1e-3  # pixels and scores
        if head == "mask_rcnn":
            assert got["masks"].shape == ref["masks"].shape
            torch.testing.assert_close(got["masks"], ref["masks"], atol=1e-3, rtol=0)


def test_runner_score_threshold_and_bad_files(exported, tmp_path):
    _, run = exported("faster_rcnn")
    image = torch.rand(3, 64, 64)
    every = run(image)[0]
    floor = run.score_thresh
    run.score_thresh = float(every["scores"].median())
    kept = run(image)[0]
    run.score_thresh = floor
    assert 0 < len(kept["scores"]) < len(every["scores"]) and kept["scores"].min() >= float(every["scores"].median())
    with pytest.raises(ValueError, match=r"expected a float \(3, H, W\)"):
        run([torch.rand(1, 64, 64)])
    import onnx

    plain = onnx.load(str(run.path))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not written by export_detector_onnx"):
        OnnxDetector(tmp_path / "plain.onnx")


def test_failed_export_writes_nothing(tmp_path, monkeypatch):
    det = distinct_scores("retinanet")

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match="retinanet detector failed: RuntimeError: unsupported operator"):
        export_detector_onnx(det, tmp_path / "r.onnx", size=(64, 64))
    assert list(tmp_path.iterdir()) == []


def test_detection_difference_pairs_detections():
    a = {"boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]]), "scores": torch.tensor([0.9, 0.2]),
         "labels": torch.tensor([0, 1])}
    swapped = {k: v.flip(0) for k, v in a.items()}
    assert detection_difference(a, swapped) == 0.0
    moved = {**swapped, "boxes": swapped["boxes"] + torch.tensor([[0.0, 0, 0, 0.5], [0, 0, 0, 0]])}
    assert detection_difference(a, moved) == pytest.approx(0.5)
    weak_missing = {k: v[:1] for k, v in a.items()}
    assert detection_difference(a, weak_missing, floor=0.5) == 0.0
    assert detection_difference(a, weak_missing) == float("inf")


def test_int8_graph_keeps_the_metadata_and_quantises_the_matmuls(exported, tmp_path):
    import onnx

    _, run = exported("faster_rcnn")
    path = quantize_detector_onnx(run.path, tmp_path / "int8.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops and "MatMulInteger" not in {
        node.op_type for node in onnx.load(str(run.path)).graph.node}
    int8 = OnnxDetector(path)
    assert int8.config == run.config and int8.class_names == ["person", "car"]
    out = int8([torch.rand(3, 64, 96)])[0]
    assert set(out) == {"boxes", "scores", "labels"} and out["labels"].dtype == torch.int64
    assert len(out["boxes"]) > 0 and 0 <= int(out["labels"].min()) and int(out["labels"].max()) <= 1
