"""The fast paths that rewrite a computation: ``Block``'s eval path, ``ConvBNReLU.forward_concat``, compiling.

The Block fast path (residual adds inside the output matmuls, folded qkv bias, GELU in place) must give what the
standard path gives, leave every tensor a caller holds untouched, and be taken only where it is valid; the split
fuse conv must equal the conv of the concatenation, gradients included.
"""

from __future__ import annotations

import pytest
import torch

from unip_hub.heads.conv import ConvBNReLU
from unip_hub.inference import compile_for_inference
from unip_hub.layers import Block
from unip_hub.models.vit import UnipViT


def _random_block(dim: int = 64, heads: int = 4, **kwargs) -> Block:
    torch.manual_seed(0)
    blk = Block(dim, heads, **kwargs).eval()
    with torch.no_grad():
        for p in blk.parameters():  # no zero biases or unit scales: every folded term must matter
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.ndim == 1 and p.shape[0] == dim else 0.0))
    return blk


def _standard(blk: Block, x: torch.Tensor) -> torch.Tensor:
    h = x + blk.ls1(blk.attn(blk.norm1(x)))
    return h + blk.ls2(blk.mlp(blk.norm2(h)))


@pytest.mark.parametrize("qkv_bias", [True, False], ids=["qkv_bias", "no_qkv_bias"])
@pytest.mark.parametrize("init_values", [None, 0.3], ids=["no_layer_scale", "layer_scale"])
def test_fast_path_equals_the_standard_block(qkv_bias, init_values):
    blk = _random_block(qkv_bias=qkv_bias, init_values=init_values)
    if init_values is not None:
        with torch.no_grad():
            blk.ls1.gamma.uniform_(0.1, 2.0)
            blk.ls2.gamma.uniform_(-1.0, 1.0)
    x = torch.randn(3, 17, 64)
    before = x.clone()
    with torch.inference_mode():
        assert blk._inference_path(x)
        fast = blk(x)
        ref = _standard(blk, x)
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-5)
    assert torch.equal(x, before)  # the input is never written to


def test_fast_path_is_taken_only_in_eval_without_autograd(monkeypatch):
    blk = _random_block()
    x = torch.randn(2, 5, 64)
    calls = []
    original = Block._forward_inference
    monkeypatch.setattr(Block, "_forward_inference", lambda self, t: calls.append(1) or original(self, t))
    with torch.no_grad():
        blk(x)
    assert len(calls) == 1
    blk(x)  # autograd on: the standard path (it has gradients)
    with torch.no_grad():
        blk.train()(x)  # training: dropout / drop-path belong to the standard path
        blk.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: the standard path
            out = blk(x)
        traced = torch.jit.trace(blk, x, check_trace=False)  # graphs record the standard ops
        assert "addmm_" not in str(traced.graph)
        blk.mlp.act = torch.nn.GELU(approximate="tanh")  # a changed MLP is run as it is
        blk(x)
    assert len(calls) == 1 and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("init_values", [None, 0.3], ids=["no_layer_scale", "layer_scale"])
def test_fx_graph_records_the_path_eager_takes(init_values):
    blk = _random_block(init_values=init_values)
    x = torch.randn(2, 9, 64)
    with torch.inference_mode():  # traced without autograd: the fast path, in-place ops kept by dead-code removal
        graph = torch.fx.symbolic_trace(blk)
        graph.graph.eliminate_dead_code()
        graph.recompile()
        assert torch.equal(graph(x), blk(x)) and "gelu_" in graph.code
    graph = torch.fx.symbolic_trace(blk)  # autograd on: the standard modules
    assert torch.equal(graph(x), blk(x)) and "gelu_" not in graph.code


def test_fast_path_keeps_every_intermediate_output():
    torch.manual_seed(0)
    model = UnipViT(img_size=64, embed_dim=64, depth=4, num_heads=2, init_values=None).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        fast = model.get_intermediate_layers(x, n=4, norm=False)
    with torch.enable_grad():  # the same blocks through the standard path
        ref = model.get_intermediate_layers(x, n=4, norm=False)
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)


def test_compile_for_inference_matches_eager_and_refuses_training():
    torch.manual_seed(0)
    model = UnipViT(img_size=32, embed_dim=32, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="eval"):
        compile_for_inference(model)
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    compiled = compile_for_inference(model.forward_features)
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x), model.forward_features(x), atol=1e-5, rtol=1e-5)


def test_compile_for_inference_asks_inductor_for_cuda_graphs(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, dynamic=None, options=None: seen.append(options) or fn)
    model = UnipViT(img_size=32, embed_dim=32, depth=1, num_heads=2).eval()
    compile_for_inference(model, cuda_graphs=True)
    compile_for_inference(model)
    assert seen[0]["triton.cudagraphs"] is True and "triton.cudagraphs" not in seen[1]
    assert all(options["freezing"] for options in seen)


def test_conv_of_a_concatenation_without_building_it():
    torch.manual_seed(0)
    unit = ConvBNReLU(12, 5, 3).eval()
    with torch.no_grad():
        unit.bn.running_mean.normal_()
        unit.bn.running_var.uniform_(0.5, 2.0)
    maps = [torch.randn(2, c, 7, 9, requires_grad=True) for c in (4, 3, 5)]
    ref = unit(torch.cat(maps, dim=1))
    out = unit.forward_concat(maps)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    inputs = [*maps, unit.conv.weight]
    for a, b in zip(torch.autograd.grad(out.square().sum(), inputs), torch.autograd.grad(ref.square().sum(), inputs)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(unit.forward_concat(maps), ref.detach(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="do not add up"):
        unit.forward_concat(maps[:2])


@pytest.mark.parametrize("hw", [(12, 12), (2, 3)], ids=["bn_folded", "weight_larger_than_map"])
def test_eval_batchnorm_folding_gives_the_same_map(hw):
    torch.manual_seed(0)
    unit = ConvBNReLU(12, 5, 3).eval()
    with torch.no_grad():
        unit.bn.running_mean.normal_()
        unit.bn.running_var.uniform_(0.5, 2.0)
        unit.bn.weight.uniform_(-2.0, 2.0)
        unit.bn.bias.normal_()
    x = torch.randn(1, 12, *hw)
    with torch.no_grad():
        assert unit._weights(x)[2] == (hw == (12, 12))  # folded only where the weight is smaller than the map
        folded = unit(x)
    torch.testing.assert_close(folded, unit(x).detach(), atol=1e-5, rtol=1e-5)  # autograd on: plain BN
