"""The benchmark tools and suite: FLOP counts, peak memory, interleaving, baselines, ``unip benchmark --quick``.

No timing assertions: the tests check what is counted, that the baselines compute what ours computes, and that the
report has every field.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from unip_hub.benchmark import BenchConfig, count_flops, load_baselines, peak_memory_bytes, time_interleaved
from unip_hub.benchmark.report import format_markdown, format_table
from unip_hub.cli import main
from unip_hub.layers import Attention
from unip_hub.models.vit import UnipViT, build_vit

TINY = dict(embed_dim=64, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def baselines():
    module = load_baselines()
    assert module.__name__ == "unip_hub.benchmark.baselines", "the baselines ship with the package"
    return module


def test_flops_count_matmuls_and_cpu_fused_attention():
    x, w = torch.randn(7, 5), torch.randn(3, 5)
    assert count_flops(lambda: F.linear(x, w)) == 2 * 7 * 5 * 3
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 12, 8), torch.randn(2, 3, 12, 8)
    fused = count_flops(lambda: F.scaled_dot_product_attention(q, k, v))
    explicit = count_flops(lambda: (q @ k.transpose(-2, -1)).softmax(-1) @ v)
    assert fused == explicit == 2 * 2 * 3 * 10 * 12 * (8 + 8)
    q.requires_grad_(True)
    out = F.scaled_dot_product_attention(q, k, v)
    assert count_flops(lambda: out.sum().backward()) == 2 * fused
    model = UnipViT(img_size=32, **TINY).eval()
    img = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():  # 2 blocks: qkv, proj, fc1, fc2 on 1 + 4 tokens; attention; 2x2 patch conv
        linears = 2 * (2 * 2 * 5 * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64))  # blocks x (2 B N K N_out)
        attention = 2 * (2 * 2 * 2 * 5 * 5 * (32 + 32))  # blocks x (2 B H N N (D + D))
        conv = 2 * 2 * 4 * 64 * 3 * 16 * 16
        assert count_flops(lambda: model(img)) == linears + attention + conv


def test_peak_memory_sees_the_largest_live_tensor():
    def fn():
        a = torch.ones(1024, 1024)  # 4 MiB, freed before the 8 MiB one
        del a
        b = torch.ones(2048, 1024)
        return float(b[0, 0])

    peak = peak_memory_bytes(fn)
    assert 8 * 2**20 <= peak < 12 * 2**20


def test_fused_attention_memory_grows_linearly_with_tokens():
    attn = Attention(64, 2).eval()
    peaks = {}
    for n in (256, 1024):
        x = torch.randn(1, n, 64)
        with torch.inference_mode():
            fused = peak_memory_bytes(lambda x=x: attn(x))
            explicit = peak_memory_bytes(lambda x=x: attn.forward_with_logits(x))
        peaks[n] = (fused, explicit)
    fused_growth = peaks[1024][0] / peaks[256][0]
    explicit_growth = peaks[1024][1] / peaks[256][1]
    assert fused_growth < 6, f"fused attention memory grew {fused_growth:.1f}x for 4x tokens (N^2 would be 16x)"
    assert explicit_growth > 10  # the measure does see an (N, N) matrix when there is one
    assert peaks[1024][0] < 2 * 1024 * 1024 * 4  # less than one (heads, N, N) float matrix


def test_time_interleaved_rotates_the_order_and_measures_the_peak():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}

    class FakePeak:
        def measure(self):
            calls.append("peak")
            return 1.0

    t = time_interleaved(variants, rounds=3, warmup=1, peak=FakePeak())
    assert calls == ["a", "b", "c", "peak", "a", "b", "c", "peak", "b", "c", "a", "peak", "c", "a", "b"]
    assert {n: len(v) for n, v in t.seconds.items()} == {"a": 3, "b": 3, "c": 3} and t.peak_gflops == [1.0] * 3
    assert t.ratio("a", "a") == 1.0


def test_time_interleaved_settles_before_every_timed_call(monkeypatch):
    import time

    events = []
    monkeypatch.setattr(time, "sleep", lambda s: events.append(("sleep", s)))
    variants = {name: (lambda name=name: events.append(name)) for name in ("a", "b")}

    class FakePeak:
        def measure(self):
            events.append("peak")
            return 1.0

    time_interleaved(variants, rounds=1, warmup=1, peak=FakePeak(), settle=0.03)
    # warm-up calls run back to back; each timed call and the round's peak wait first (a thread pool left spinning
    # by the call before, ONNX Runtime's after a run, would otherwise slow whichever variant comes next)
    assert events == ["a", "b", ("sleep", 0.03), "peak", ("sleep", 0.03), "a", ("sleep", 0.03), "b"]


def test_timm_baseline_has_our_weights(baselines):
    model = build_vit("unip_vit_tiny", img_size=64, init_values=0.5, **TINY).eval()
    ref = baselines.timm_vit(model)
    x = torch.randn(2, 3, 64, 64)  # the stored grid (timm resamples other grids with antialiasing, we do not)
    with torch.no_grad():
        torch.testing.assert_close(ref.forward_features(x), model.forward_features(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one head count"):
        baselines.timm_vit(build_vit("unip_vit_tiny", last_heads=4, **TINY))


def test_research_style_computes_what_ours_computes(baselines):
    from unip_hub.train.distill import NMIHAD

    torch.manual_seed(0)
    model = build_vit("unip_vit_tiny", img_size=32, **TINY).eval()
    x = torch.randn(2, 3, 48, 32)
    with torch.no_grad():
        torch.testing.assert_close(baselines.research_forward_features(model, x), model.forward_features(x),
                                   atol=1e-5, rtol=1e-5)
    teacher = UnipViT(img_size=32, embed_dim=64, depth=3, num_heads=4).eval()
    student = UnipViT(img_size=32, embed_dim=64, depth=2, num_heads=2, last_heads=4)
    ours = NMIHAD(student, teacher, 2)(x)
    ref = baselines.research_distill_loss(student, teacher, x, 2)
    torch.testing.assert_close(ref, ours, atol=1e-5, rtol=1e-5)
    ours.backward()
    grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    student.zero_grad()
    ref.backward()
    for n, g in grads.items():
        torch.testing.assert_close(dict(student.named_parameters())[n].grad, g, atol=1e-5, rtol=1e-4)


def test_research_style_slide_equals_our_batched_slide(baselines, monkeypatch):
    from unip_hub.heads.conv import ConvBNReLU
    from unip_hub.hub.segmenters import create_segmenter

    torch.manual_seed(0)
    seg = create_segmenter("unip_vit_tiny", num_classes=4, img_size=64, aux=False, **TINY).eval()
    x = torch.randn(1, 3, 48, 150)  # three windows of 48 x 64
    with torch.no_grad():
        ours = seg.slide_logits(x, 64, 43, batch_windows=3)
        ref = baselines.research_segmenter_slide(seg, x, 64, 43)
        torch.testing.assert_close(ref, ours, atol=1e-5, rtol=1e-5)
        whole = seg(x)
        monkeypatch.setattr(ConvBNReLU, "forward_concat", None)  # the research style builds its concatenations
        torch.testing.assert_close(baselines.research_segmenter_whole(seg, x), whole, atol=1e-5, rtol=1e-5)
        assert "_fuse" not in vars(seg.decode_head)  # the head is left as it was


def test_config_refuses_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="fp16"):
        BenchConfig(dtype="fp16").validate()
    with pytest.raises(ValueError, match="unknown benchmark groups"):
        BenchConfig(groups=("training",)).validate()
    with pytest.raises(ValueError, match="unknown architectures"):
        BenchConfig(archs=("vit_huge",)).validate()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            BenchConfig(device="cuda").validate()
    with pytest.raises(ValueError, match="--compile --max-autotune"):
        BenchConfig(max_autotune=True).validate()
    with pytest.raises(ValueError, match="--device cuda --compile --cuda-graphs"):
        BenchConfig(compile=True, cuda_graphs=True).validate()  # CUDA graphs are a GPU setting
    with pytest.raises(ValueError, match="--runtime onnxruntime"):
        BenchConfig(ort_profile=True).validate()  # nothing to profile without the ONNX Runtime variants
    with pytest.raises(FileNotFoundError, match="baselines file"):
        load_baselines(tmp_path / "missing.py")


@pytest.mark.slow
def test_quick_benchmark_writes_every_field(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--quick", "--out", str(out), "--markdown"]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["baselines"] == "unip_hub.benchmark.baselines" and report["matmul_peak_gflops_per_s"] > 0
    assert {"cpu_model", "torch", "torch_threads", "load_average_start", "load_average_end"} <= set(report["machine"])
    groups = {r["group"] for r in report["results"]}
    assert groups == {"backbone", "segmenter", "distill"}
    for r in report["results"]:
        expected = {"ours", "research"} if r["group"] == "distill" else {"ours", "timm", "research"}
        assert set(r["variants"]) == expected and r["params_m"] > 0
        for name, v in r["variants"].items():
            assert v["gflops"] > 0 and v["latency_ms"] > 0 and v["throughput_img_per_s"] > 0
            assert 0 < v["fraction_of_peak"] and v["peak_memory_mb"] > 0
            assert (name == "ours") != ("ours_speedup" in v)
        checks = r["checks"]
        for key, value in checks.items():
            # timm resamples the position table with antialiasing off the stored grid (the segmenter's 48 x 80)
            resampled = r["group"] == "segmenter" and key.endswith("_timm")
            if key.startswith(("max_abs_diff", "loss_abs_diff")):
                assert value < (1e-2 if resampled else 1e-4), (r["name"], key, value)
            if key.startswith("mask_agreement"):
                assert value >= (0.99 if resampled else 1.0), (r["name"], key, value)
    assert "ours speed-up" in printed and "| case | variant |" in printed
    assert format_table(report).count("\n") > len(report["results"])
    assert format_markdown(report).count("\n") == 1 + sum(len(r["variants"]) for r in report["results"])


def test_block_training_recomputes_gelu_with_identical_gradients():
    from unip_hub.layers import Block
    from unip_hub.layers.gelu_linear import gelu_linear

    torch.manual_seed(0)
    blk = Block(64, 2, init_values=0.5).train()
    x = torch.randn(2, 9, 64, requires_grad=True)
    results = []
    for recompute in (True, False):
        blk.zero_grad()
        x.grad = None
        if recompute:
            out = blk(x)
        else:  # the plain timm MLP: autograd keeps GELU's output
            h = x + blk.ls1(blk.attn(blk.norm1(x)))
            out = h + blk.ls2(blk.mlp(blk.norm2(h)))
        out.pow(2).sum().backward()
        results.append((out.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in blk.named_parameters()}))
    (o1, gx1, gp1), (o2, gx2, gp2) = results
    torch.testing.assert_close(o1, o2, atol=0, rtol=0)
    torch.testing.assert_close(gx1, gx2, atol=1e-6, rtol=1e-5)
    for n in gp2:
        torch.testing.assert_close(gp1[n], gp2[n], atol=1e-5, rtol=1e-5, msg=n)
    h = torch.randn(3, 16, requires_grad=True)
    w = torch.randn(4, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: gradients in the parameters' dtype
        gelu_linear(h, w).float().sum().backward()
    assert h.grad.dtype == w.grad.dtype == torch.float32
    g = torch.autograd.grad(gelu_linear(h, w).sum(), h, create_graph=True)[0]
    with pytest.raises(RuntimeError):  # not twice differentiable: an error, never a silent zero
        g.sum().backward()


def test_student_training_memory_is_below_the_plain_mlp(monkeypatch):
    from unip_hub.layers import Block

    torch.manual_seed(0)
    model = UnipViT(img_size=32, embed_dim=64, depth=3, num_heads=2).train()
    x = torch.randn(4, 3, 64, 64)

    def held(fn):
        out = {}
        peak = peak_memory_bytes(lambda: out.setdefault("loss", fn()))
        out.clear()
        return peak

    ours = held(lambda: model.forward_features(x).sum())
    hidden = 4 * (1 + 16) * 256 * 4  # one (B, N, 4C) float tensor per block
    monkeypatch.setattr(Block, "_mlp", lambda self, t: self.mlp(t))  # the same model with the plain timm MLP
    plain = held(lambda: model.forward_features(x).sum())
    # three GELU outputs no longer kept, less the one transient GELU output of the last block's forward
    assert plain - ours >= 2 * hidden


@pytest.mark.slow
def test_quick_benchmark_measures_runtime_paths_and_their_accuracy(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
    from unip_hub.hub.segmenters import create_segmenter

    torch.manual_seed(0)
    seg = create_segmenter("unip_vit_tiny", num_classes=7, aux=False, img_size=64, **TINY).eval()
    ckpt = tmp_path / "seg.pth"
    save_segmenter_checkpoint(seg, ckpt)
    out = tmp_path / "bench.json"
    argv = ["benchmark", "--quick", "--groups", "backbone", "segmenter", "--modes", "whole", "--no-memory",
            "--runtime", "torch", "onnxruntime", "--precision", "fp32", "int8", "--cache-dir", str(tmp_path / "c"),
            "--accuracy-model", str(ckpt), "--ort-profile", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    for r in report["results"]:
        assert {"ours", "timm", "ort-fp32", "ort-int8", "timm-ort"} <= set(r["variants"]), r["name"]
        for name, v in r["variants"].items():
            assert v["gflops"] > 0 and v["latency_ms"] > 0
            assert (name == "timm") != ("speedup_vs_timm" in v)
        assert r["variants"]["ort-fp32"]["gflops"] == r["variants"]["ours"]["gflops"]  # same computation
        assert r["checks"]["max_abs_diff_ort-fp32"] < 1e-4
        assert r["checks"]["max_abs_diff_ort-int8"] > 0
        for name in ("ort-fp32", "ort-int8", "timm-ort"):  # --ort-profile: kernel time per operator type
            ops = r["variants"][name]["ort_ops"]
            assert sum(o["share"] for o in ops) == pytest.approx(1.0) and all(o["ms_per_run"] > 0 for o in ops)
        assert "MultiHeadAttention" in {o["op"] for o in r["variants"]["ort-fp32"]["ort_ops"]}
        assert "ort_ops" not in r["variants"]["ours"]
    acc = report["accuracy"]["paths"]
    assert set(acc) == {"onnxruntime-fp32/whole", "onnxruntime-int8/whole"}
    assert acc["onnxruntime-fp32/whole"]["mask_agreement"] == pytest.approx(1.0, abs=1e-3)
    assert {"mIoU", "mIoU_reference", "mIoU_drop_points"} <= set(acc["onnxruntime-int8/whole"])
    printed = capsys.readouterr().out
    assert "vs timm" in printed and "accuracy vs fp32 torch" in printed
    assert "kernel time per operator type" in printed and "ort-int8: " in printed


@pytest.mark.slow
def test_quick_video_benchmark_reports_end_to_end_and_model_rates(tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("scipy")
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--quick", "--groups", "video", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["group"] == "video" and row["name"].startswith("video/unip_vit_tiny@")
    assert set(row["variants"]) == {"end-to-end", "model-only"} and row["video"]["frames"] == 4
    assert all(v["throughput_img_per_s"] > 0 for v in row["variants"].values())
    assert "ratio" in row and row["ratio"] == pytest.approx(row["video"]["end_to_end_fps"] / row["video"]["model_fps"])
    meta = row["meta"]  # --quick: one end-to-end run between two model-only runs
    assert meta["repeats"] == len(meta["end_to_end_fps_runs"]) == 1 and len(meta["model_fps_runs"]) == 2
    from unip_hub.benchmark.config import BenchConfig

    with pytest.raises(ValueError, match="repeats"):
        BenchConfig(groups=("video",), video_repeats=0).validate()
