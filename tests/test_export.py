"""Export of backbones and segmenters (ONNX via onnxruntime, TorchScript, torch.export) with dynamic sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unip_hub.cli import main
from unip_hub.export import AdaptiveAvgPool2dForExport, ExportError, default_check_sizes, export_model
from unip_hub.models.vit import UnipViT

TINY_VIT = dict(embed_dim=64, depth=2, num_heads=2, img_size=64)
TINY_SEG = dict(img_size=64, embed_dim=64, depth=2, num_heads=2)


def _vit(seed: int = 0) -> UnipViT:
    torch.manual_seed(seed)
    model = UnipViT(**TINY_VIT)
    with torch.no_grad():  # a non-trivial position table and biases
        model.pos_embed.normal_(0, 0.5)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    return model.eval()


def _segmenter(seed: int = 0):
    from unip_hub.hub.segmenters import create_segmenter

    torch.manual_seed(seed)
    seg = create_segmenter("unip_vit_tiny", num_classes=5, aux=False, **TINY_SEG)
    with torch.no_grad():
        for name, t in seg.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or name.endswith("pos_embed"):
                t.normal_(0, 0.5)
    return seg.eval()


def _run(fmt: str, path, x: torch.Tensor) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        if fmt == "torchscript":
            return torch.jit.load(str(path))(x).numpy()
        return torch.export.load(str(path)).module()(x).numpy()


FORMATS = [pytest.param("onnx", marks=pytest.mark.slow), "torchscript", pytest.param("export", marks=pytest.mark.slow)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_backbone_export_is_dynamic_and_matches_eager(tmp_path, fmt):
    model = _vit()
    path = tmp_path / f"vit.{fmt}"
    # captured at the stored grid (64 px = 4x4): the position table must still be resampled in the graph
    result = export_model(model, path, fmt, size=(64, 64))
    assert path.is_file() and result.kind == "backbone"
    assert set(result.max_abs_error) == {(64, 64), *default_check_sizes((64, 64), "backbone")}
    assert max(result.max_abs_error.values()) <= 1e-4
    for hw, batch in (((48, 112), 3), ((96, 32), 1)):  # sizes and batches the export never saw
        x = torch.randn(batch, 3, *hw)
        with torch.no_grad():
            expected = model.forward_features(x).numpy()
        got = _run(fmt, path, x)
        assert got.shape == (batch, 1 + hw[0] * hw[1] // 256, 64)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_segmenter_export_pads_any_size_inside_the_graph(tmp_path, fmt):
    seg = _segmenter()
    path = tmp_path / f"seg.{fmt}"
    result = export_model(seg, path, fmt, size=(64, 80))
    assert result.kind == "segmenter" and max(result.max_abs_error.values()) <= 1e-4
    x = torch.randn(1, 3, 75, 101)  # not a multiple of 16
    with torch.no_grad():
        expected = seg(x).numpy()
    got = _run(fmt, path, x)
    assert got.shape == (1, 5, 75, 101)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_class_token_output_and_model_state_kept(tmp_path):
    model = _vit().train()
    result = export_model(model, tmp_path / "cls.pt", "torchscript", size=(32, 48), output="cls")
    assert model.training, "the caller's model must get its training mode back"
    x = torch.randn(2, 3, 80, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(result.path))(x), model(x), atol=1e-4, rtol=0)


def test_failed_check_writes_nothing(tmp_path):
    path = tmp_path / "never.pt"
    with pytest.raises(ExportError, match="differs from eager"):
        export_model(_vit(), path, "torchscript", size=(32, 32), atol=-1.0)
    assert list(tmp_path.iterdir()) == [], "no output and no temporary file may remain"


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(_vit(), tmp_path / "x", "tflite")
    with pytest.raises(ValueError, match="multiple of 16"):
        export_model(_vit(), tmp_path / "x.pt", "torchscript", size=(50, 64))
    with pytest.raises(TypeError, match="UnipViT backbone or a Segmenter"):
        export_model(nn.Linear(2, 2), tmp_path / "x.pt", "torchscript")
    with pytest.raises(ValueError, match="is a folder"):
        export_model(_vit(), tmp_path, "torchscript")


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 5), (13, 6), (6, 6), (32, 20)])
def test_exportable_adaptive_pool_equals_torch(size):
    x = torch.randn(2, 3, *size)
    for out in (1, 2, 3, 6):
        torch.testing.assert_close(AdaptiveAvgPool2dForExport(out)(x), nn.AdaptiveAvgPool2d(out)(x),
                                   atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("n_in", [1, 2, 4, 14, 32])
def test_bicubic_matrices_equal_torch_bicubic(n_in):
    from unip_hub.layers.pos_embed import bicubic_matrix

    x = torch.randn(1, 5, n_in, n_in + 3)
    for n_out in (1, 3, n_in, 2 * n_in + 1, 32, 40):  # down, identity, up; odd ratios
        for w_out in (n_in + 3, 7, 40):
            rows, cols = bicubic_matrix(n_out, n_in, x), bicubic_matrix(w_out, n_in + 3, x)
            ref = torch.nn.functional.interpolate(x, size=(n_out, w_out), mode="bicubic", align_corners=False)
            torch.testing.assert_close(rows @ x @ cols.T, ref, atol=1e-5, rtol=1e-5)  # float rounding


def test_onnx_position_resize_is_matrices_not_a_cubic_resize(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    model = _vit()
    path = tmp_path / "vit.onnx"
    export_model(model, path, "onnx", size=(64, 64))  # verified against eager at three sizes (1e-4)
    modes = [a.s for n in onnx.load(str(path)).graph.node if n.op_type == "Resize" for a in n.attribute
             if a.name == "mode"]
    assert b"cubic" not in modes  # ONNX Runtime's cubic Resize took 25-110 ms per call on a 384-channel table
    x = torch.randn(1, 3, 160, 96)  # a 10 x 6 grid from the stored 4 x 4
    with torch.no_grad():
        np.testing.assert_allclose(_run("onnx", path, x), model.forward_features(x).numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_cli_exports_a_saved_folder_and_a_segmenter_checkpoint(tmp_path, capsys):
    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint

    folder = tmp_path / "vit"
    _vit().save_pretrained(folder)
    out = tmp_path / "vit.pt"
    assert main(["export", str(folder), "--format", "torchscript", "-o", str(out), "--size", "64", "64"]) == 0
    assert out.is_file() and "max |exported - eager|" in capsys.readouterr().out

    seg = _segmenter()
    ckpt = tmp_path / "seg.pth"
    save_segmenter_checkpoint(seg, ckpt)  # meta (arch, widths, classes) from the model's config
    out = tmp_path / "seg.pt"
    assert main(["export", str(ckpt), "--format", "torchscript", "-o", str(out), "--size", "64", "64"]) == 0
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out))(x), seg(x), atol=1e-4, rtol=0)


def test_cli_reports_bad_model_names(tmp_path, capsys):
    assert main(["export", "unip_vit_huge", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "neither an architecture" in capsys.readouterr().err
