"""Runtimes behind one switch (torch / ONNX Runtime, fp32 / int8): outputs, cache, refusal, accuracy report.

Tiny segmenters and few calibration frames; no timing assertions (speed is measured by ``unip benchmark``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unip_hub.runtime import (
    AccuracyError,
    CalibrationSet,
    compare_outputs,
    load_runtime,
    synthetic_calibration,
    weights_sha256,
)

pytest.importorskip("onnxruntime")

TINY_SEG = dict(img_size=64, embed_dim=64, depth=2, num_heads=2)


def _segmenter(seed: int = 0):
    from unip_hub.hub.segmenters import create_segmenter

    torch.manual_seed(seed)
    seg = create_segmenter("unip_vit_tiny", num_classes=7, aux=False, **TINY_SEG)  # the synthetic classes
    with torch.no_grad():  # BatchNorm statistics away from the identity, so folding matters
        for name, t in seg.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                t.normal_(0, 0.5)
    return seg.eval()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One tiny segmenter with its fp32 and int8 graphs built into a fresh cache folder."""
    cache = tmp_path_factory.mktemp("runtime-cache")
    seg = _segmenter()
    calib = synthetic_calibration(seg, frames=2, size=(64, 80))
    fp32 = load_runtime(seg, "onnxruntime", "fp32", cache_dir=cache)
    int8 = load_runtime(seg, "onnxruntime", "int8", cache_dir=cache, calibration=calib, min_agreement=0.0)
    return seg, calib, cache, fp32, int8


def test_runtimes_compute_the_segmenters_logits(built):
    seg, _, _, fp32, int8 = built
    x = torch.randn(2, 3, 75, 101)  # batch and size the export never saw, not a multiple of 16
    with torch.no_grad():
        ref = seg(x)
    torch.testing.assert_close(load_runtime(seg)(x), ref)  # torch fp32: the model itself
    out = fp32(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    q = int8(x)
    assert q.shape == ref.shape and torch.isfinite(q).all()
    assert float((q - ref).abs().max()) < 1.0  # int8 is close, not equal
    assert fp32.info.name == "onnxruntime-fp32" and int8.info.name == "onnxruntime-int8"


def test_fp32_and_int8_graphs_run_fused_attention(built):
    import onnx

    _, _, _, fp32, int8 = built
    meta = json.loads(fp32.info.path.with_suffix(".json").read_text())
    assert meta["attention_fused"] == TINY_SEG["depth"] and max(meta["fused_max_abs_error"].values()) < 1e-3
    for rt in (fp32, int8):  # one MultiHeadAttention per block, no (B, H, N, N) softmax left
        ops = [n.op_type for n in onnx.load(str(rt.info.path)).graph.node]
        assert ops.count("MultiHeadAttention") == TINY_SEG["depth"] and "Softmax" not in ops


def test_int8_keeps_first_and_last_conv_float_and_records_accuracy(built):
    import onnx

    _, calib, _, _, int8 = built
    meta = json.loads(int8.info.path.with_suffix(".json").read_text())
    graph = onnx.load(str(int8.info.path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} & ops or "QLinearConv" in ops  # static convs
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops  # dynamic matmuls
    kept = meta["int8"]["float_convs"]
    float_convs = {n.name for n in graph.node if n.op_type == "Conv"}
    assert len(kept) == 2 and set(kept) <= float_convs, "patch embedding and the logits conv stay float"
    assert meta["int8"]["unshared_inputs"] > 0  # the top-down sums and the stride-16 map also feed float ops
    import onnxruntime as ort

    so = ort.SessionOptions()  # what ONNX Runtime runs: every other conv fused into QLinearConv, none left float
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(int8.info.path.with_name("optimised.onnx"))
    ort.InferenceSession(str(int8.info.path), so, providers=["CPUExecutionProvider"])
    optimised = onnx.load(so.optimized_model_filepath).graph.node
    int8.info.path.with_name("optimised.onnx").unlink()
    assert sum(n.op_type == "Conv" for n in optimised) == 2
    assert sum(n.op_type == "QLinearConv" for n in optimised) == len(float_convs) - 2  # the QDQ graph's other convs
    acc = int8.info.accuracy
    assert acc == meta["accuracy"] and acc["frames"] == len(calib.frames)
    assert 0.0 <= acc["mask_agreement"] <= 1.0 and acc["max_abs_diff"] > 0
    assert {"mIoU", "mIoU_reference", "mIoU_drop_points"} <= set(acc)  # synthetic frames carry labels


def test_cache_is_reused_and_keyed_by_the_weights(built):
    seg, calib, cache, fp32, int8 = built
    again = load_runtime(seg, "onnxruntime", "int8", cache_dir=cache, calibration=calib, min_agreement=0.0)
    assert again.info.cached and again.info.path == int8.info.path
    assert load_runtime(seg, "onnxruntime", "fp32", cache_dir=cache).info.path == fp32.info.path
    assert fp32.info.path.name.startswith(weights_sha256(seg)[:16])
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 4 and all(n.endswith((".onnx", ".json")) for n in names), names  # no temporaries left
    changed = _segmenter(seed=1)
    assert weights_sha256(changed) != weights_sha256(seg)


@pytest.mark.slow
def test_changed_weights_rebuild(built):
    _, _, cache, fp32, _ = built
    changed = _segmenter()
    with torch.no_grad():
        next(changed.decode_head.parameters()).add_(0.5)
    rebuilt = load_runtime(changed, "onnxruntime", "fp32", cache_dir=cache)
    assert not rebuilt.info.cached and rebuilt.info.path != fp32.info.path
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), changed(x), atol=1e-4, rtol=0)


def test_low_agreement_is_refused_with_a_clear_message(built):
    seg, calib, cache, _, int8 = built
    with pytest.raises(AccuracyError, match=r"refusing it.*--min-agreement"):
        load_runtime(seg, "onnxruntime", "int8", cache_dir=cache, calibration=calib, min_agreement=1.01)
    # the build stays cached: a lower threshold loads it without building again
    ok = load_runtime(seg, "onnxruntime", "int8", cache_dir=cache, calibration=calib,
                      min_agreement=int8.info.accuracy["mask_agreement"])
    assert ok.info.cached


def test_bad_runtime_choices_are_refused():
    seg = _segmenter()
    with pytest.raises(ValueError, match="int8 runs under --runtime onnxruntime"):
        load_runtime(seg, "torch", "int8")
    with pytest.raises(ValueError, match="onnxruntime runtime runs fp32/int8"):
        load_runtime(seg, "onnxruntime", "bf16")
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_runtime(seg, "tensorrt")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16 is a GPU precision"):
            load_runtime(seg, "torch", "fp16")


def test_torch_bf16_runtime_returns_float32_logits():
    seg = _segmenter()
    x = torch.randn(1, 3, 64, 64)
    out = load_runtime(seg, "torch", "bf16")(x)
    with torch.no_grad():
        ref = seg(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) > 0.9


def test_compare_outputs_reports_agreement_and_miou():
    frames = [torch.randn(1, 3, 8, 8) for _ in range(2)]
    logits = {id(f): torch.randn(1, 3, 8, 8) for f in frames}
    labels = [logits[id(f)].argmax(1)[0].numpy() for f in frames]  # the reference is right everywhere

    def ref(x):
        return logits[id(x)]

    def flipped(x):  # class 0 and 1 swapped
        return logits[id(x)][:, [1, 0, 2]]

    same = compare_outputs(ref, ref, frames, labels, 3)
    assert same["max_abs_diff"] == 0 and same["mask_agreement"] == 1.0
    assert same["mIoU"] == same["mIoU_reference"] == 1.0 and same["mIoU_drop_points"] == 0
    worse = compare_outputs(ref, flipped, frames, labels, 3)
    expected = np.mean([(lab == 2).mean() for lab in labels])
    assert worse["mask_agreement"] == pytest.approx(expected)
    assert worse["mIoU_drop_points"] > 0
    assert "mIoU" not in compare_outputs(ref, ref, frames, labels, 2)  # labels outside the classes: no mIoU


def test_file_calibration_reads_frames_and_refuses_empty_folders(tmp_path):
    from PIL import Image

    from unip_hub.runtime.calibration import calibration_set

    seg = _segmenter()
    for i in range(3):
        Image.fromarray((np.arange(48 * 64).reshape(48, 64) * (i + 1) % 256).astype(np.uint8)).save(
            tmp_path / f"f{i}.png")
    calib = calibration_set(seg, tmp_path)
    assert isinstance(calib, CalibrationSet) and len(calib.frames) == 3 and calib.labels is None
    assert calib.frames[0].shape == (1, 3, 48, 64) and calib.digest
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no calibration images"):
        calibration_set(seg, empty)


def test_file_calibration_reads_frames_as_the_segmenter_does(tmp_path):
    """16-bit counts with a window spec and a counts calibration stored in the segmenter: the calibration frames are
    what its predictor feeds the model, not the default percentile stretch."""
    from PIL import Image

    from unip_hub.inference import Predictor
    from unip_hub.runtime.calibration import file_calibration

    seg = _segmenter()
    seg.input_scaling, seg.counts_to_celsius = "window 20..40 degC", (0.01, -273.15)
    counts = (np.linspace(15, 45, 48 * 64).reshape(48, 64) + 273.15) * 100  # 15..45 degC as 0.01 K counts
    Image.fromarray(np.round(counts).astype(np.uint16)).save(tmp_path / "frame.png")
    (frame,) = file_calibration(seg, tmp_path).frames
    expected = Predictor(seg).set_image(tmp_path / "frame.png").tensor
    torch.testing.assert_close(frame, expected.cpu(), rtol=0, atol=0)
    seg.input_scaling = None  # the default: the percentile stretch of the counts gives other frames
    assert not torch.equal(file_calibration(seg, tmp_path).frames[0], frame)


def test_backbone_runtime_returns_tokens(tmp_path):
    from unip_hub.models.vit import UnipViT

    torch.manual_seed(0)
    vit = UnipViT(embed_dim=64, depth=2, num_heads=2, img_size=64).eval()
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        ref = vit.forward_features(x)
    torch.testing.assert_close(load_runtime(vit)(x), ref)
    rt = load_runtime(vit, "onnxruntime", "int8", cache_dir=tmp_path)  # dynamic matmuls only: no refusal
    out = rt(x)
    assert out.shape == ref.shape and float((out - ref).abs().max()) < 0.5
    assert "mask_agreement" not in rt.info.accuracy and rt.info.accuracy["max_abs_diff"] > 0


def test_predictor_runs_windows_through_the_runtime(built):
    from unip_hub.inference import Predictor

    seg, _, _, fp32, _ = built
    calls = []

    def counted(x):
        calls.append(tuple(x.shape))
        return fp32(x)

    gray = (np.arange(70 * 90).reshape(70, 90) % 251).astype(np.uint8)
    ours = Predictor(seg, runtime=counted).predict(gray, mode="slide", crop_size=64, stride=43)
    ref = Predictor(seg).predict(gray, mode="slide", crop_size=64, stride=43)
    assert calls and all(s[-2:] == (64, 64) for s in calls), "every window goes through the runtime"
    assert float((ours == ref).float().mean()) == 1.0


@pytest.mark.slow
def test_segment_cli_runtime_switch_caches_next_to_the_checkpoint_and_refuses(tmp_path, capsys):
    from PIL import Image

    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
    from unip_hub.cli import main

    seg = _segmenter()
    ckpt = save_segmenter_checkpoint(seg, tmp_path / "m" / "seg.pth")
    Image.fromarray((np.arange(60 * 80).reshape(60, 80) % 253).astype(np.uint8)).save(tmp_path / "f.png")
    common = ["segment", str(tmp_path / "f.png"), "--model", str(ckpt), "--mode", "whole", "--skip", "color", "overlay",
              "--quiet"]
    assert main([*common, "--out", str(tmp_path / "torch")]) == 0
    assert main([*common, "--out", str(tmp_path / "ort"), "--runtime", "onnxruntime"]) == 0
    a = np.array(Image.open(tmp_path / "torch" / "masks" / "f.png"))
    b = np.array(Image.open(tmp_path / "ort" / "masks" / "f.png"))
    assert a.shape == (60, 80) and (a == b).mean() == 1.0
    assert any((tmp_path / "m" / ".unip-runtime").glob("*.onnx")), "the cache sits next to the checkpoint"
    capsys.readouterr()
    argv = [*common, "--out", str(tmp_path / "q"), "--runtime", "onnxruntime", "--precision", "int8",
            "--min-agreement", "1.01"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "refusing it" in err and "--min-agreement" in err
    assert not (tmp_path / "q" / "masks").exists(), "a refused model writes nothing"


def test_static_shape_graph_equals_torch_and_is_cached_per_shape(tmp_path, built):
    """A fixed-shape fp32 graph: same logits as eager, one cache entry per shape, rebuilt never on reload; then
    ``static_shape="auto"`` on that cache: static graphs for the cached shapes at once, the dynamic graph for a new
    shape's first call and its own static graph from its second."""
    import shutil

    from unip_hub.runtime import ShapedRuntime

    seg = _segmenter()
    ref = load_runtime(seg)
    for shape in [(2, 64, 96), (1, 96, 64)]:
        rt = load_runtime(seg, "onnxruntime", "fp32", cache_dir=tmp_path, static_shape=shape)
        x = torch.randn(*shape[:1], 1, *shape[1:], generator=torch.Generator().manual_seed(1))
        x = x.expand(-1, seg.backbone.in_chans, -1, -1).contiguous()
        assert not rt.info.cached
        assert (rt(x) - ref(x)).abs().max().item() < 1e-3
        assert load_runtime(seg, "onnxruntime", "fp32", cache_dir=tmp_path, static_shape=shape).info.cached
    assert len(list(tmp_path.glob("*.onnx"))) == 2
    with pytest.raises(ValueError, match="static_shape"):
        load_runtime(seg, "onnxruntime", "int8", cache_dir=tmp_path, static_shape=(1, 64, 64))
    dynamic = built[3].info.path  # the fixture's dynamic graph of the same weights: no second dynamic export
    for f in (dynamic, dynamic.with_suffix(".json")):
        shutil.copy(f, tmp_path / f.name)
    auto = load_runtime(seg, "onnxruntime", "fp32", cache_dir=tmp_path, static_shape="auto")
    assert isinstance(auto, ShapedRuntime) and auto.dynamic.info.cached
    calls = [((2, 64, 96), True), ((1, 96, 64), True), ((1, 64, 64), False), ((1, 64, 64), True)]
    for shape, static in calls:  # (shape, runs a static graph): cached shapes at once, a new one from its 2nd call
        x = torch.randn(shape[0], 3, *shape[1:], generator=torch.Generator().manual_seed(2))
        assert (auto(x) - ref(x)).abs().max().item() < 1e-3
        assert (shape in auto.sessions) == static
        assert not static or auto.sessions[shape].info.path != dynamic
    assert auto.sessions[(2, 64, 96)].info.cached and not auto.sessions[(1, 64, 64)].info.cached


def test_shaped_runtime_keeps_few_sessions_and_survives_failed_builds(recwarn):
    from unip_hub.runtime import ShapedRuntime

    built = []

    def build(shape, only_cached):
        if only_cached:
            return None
        if shape[1] == 13:
            raise RuntimeError("no static graph for this one")
        built.append(shape)
        return lambda x: torch.full((1,), float(shape[1]))

    dynamic = lambda x: torch.zeros(1)  # noqa: E731
    dynamic.info = dynamic.device = None
    rt = ShapedRuntime(dynamic, build, capacity=2)
    for h in [10, 10, 11, 11, 12, 12, 10]:
        rt(torch.empty(1, 3, h, 8))
    assert list(rt.sessions) == [(1, 12, 8), (1, 10, 8)] and built.count((1, 10, 8)) == 2  # LRU of 2
    assert rt(torch.empty(1, 3, 13, 8)).item() == 0 and rt(torch.empty(1, 3, 13, 8)).item() == 0
    assert (1, 13, 8) in rt.failures and (1, 13, 8) not in rt.sessions
    assert rt(torch.empty(1, 3, 13, 8)).item() == 0 and len(recwarn) == 1  # failed once, not rebuilt
    assert rt.prepare((1, 14, 8))(None).item() == 14 and (1, 14, 8) in rt.sessions  # built before any call


def test_op_profile_gives_kernel_time_per_operator_type(built, tmp_path, monkeypatch):
    import tempfile

    from unip_hub.runtime.op_profile import format_ops, op_profile

    _, _, _, fp32, int8 = built
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the profile's JSON goes here, and must not stay
    x = torch.randn(1, 3, 64, 80)
    for rt, quantised_op in ((fp32, None), (int8, "DynamicQuantizeMatMul")):
        ops = op_profile(rt.info.path, x, runs=2)
        names = [o.op for o in ops]
        assert "MultiHeadAttention" in names and "Conv" in names  # the fused attention, the head convs
        assert quantised_op is None or quantised_op in names
        assert sum(o.share for o in ops) == pytest.approx(1.0)
        assert [o.share for o in ops] == sorted((o.share for o in ops), reverse=True)
        mha = ops[names.index("MultiHeadAttention")]
        assert mha.nodes == TINY_SEG["depth"] and mha.ms_per_run > 0
        assert format_ops(ops, top=2).startswith(f"{ops[0].op} ")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="not found"):
        op_profile(tmp_path / "missing.onnx", x)
    with pytest.raises(ValueError, match="runs must be"):
        op_profile(fp32.info.path, x, runs=0)
