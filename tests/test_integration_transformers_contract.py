"""transformers' own contract for UnipBackbone / UnipModel, written for UNIP (not copied from transformers).

The checks follow what ``BackboneTesterMixin`` (``tests/test_backbone_common.py``) asks of every backbone and what
the common model tests ask of every model: a ``stem`` stage before ``stage1..N``, the last stage by default,
``out_features`` / ``out_indices`` validation, channels, ``output_hidden_states`` / ``output_attentions`` (explicit
attention only when asked for), tuple / dict outputs, ``save_pretrained`` / ``from_pretrained`` round trips and
``use_pretrained_backbone=False``. Tiny configs: two blocks of width 32.
"""

from __future__ import annotations

import copy
import inspect
import json

import pytest
import torch

pytest.importorskip("transformers")

from transformers import AutoConfig, AutoModel
from transformers.backbone_utils import BackboneType

from unip_hub.integrations.transformers import LEVELS, STAGES, UnipBackbone, UnipConfig, UnipModel
from unip_hub.layers import Block

TINY = dict(arch="unip_vit_tiny", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32)
CLASSES = [UnipBackbone, UnipModel]


def _config(**kwargs) -> UnipConfig:
    return UnipConfig(**{**TINY, "out_features": ["stage1", "stage3"], **kwargs})


def _inputs(batch: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"pixel_values": torch.randn(batch, 3, 32, 48)}


# ------------------------------------------------------------------------------------------- backbone contract
def test_config_stages_and_out_features():
    config = UnipConfig()
    assert config.stage_names == ["stem"] + [f"stage{i}" for i in range(1, 5)] == STAGES
    assert set(config.out_features) <= set(config.stage_names)
    config = UnipConfig(out_features=None, out_indices=None)
    assert config.out_features == [config.stage_names[-1]] and config.out_indices == [len(config.stage_names) - 1]
    config = UnipConfig(out_features=["stem", "stage1"], out_indices=[0, 1])
    assert config.out_features == ["stem", "stage1"] and config.out_indices == [0, 1]
    config = UnipConfig(out_features=["stage1", "stage3"])
    assert config.out_features == ["stage1", "stage3"] and config.out_indices == [1, 3]
    config = UnipConfig(out_indices=[0, 2])
    assert config.out_features == [config.stage_names[0], config.stage_names[2]] and config.out_indices == [0, 2]
    with pytest.raises(ValueError):
        UnipConfig(out_features=["stage1", "stage2"], out_indices=[0, 2])
    with pytest.raises(ValueError, match="subset of stage_names"):
        UnipConfig(out_features=["stage9"])
    with pytest.raises(ValueError, match="valid indices"):
        UnipConfig(out_indices=[7])
    with pytest.raises(ValueError, match="same order"):
        UnipConfig(out_features=["stage3", "stage1"])


@pytest.mark.parametrize("model_class", CLASSES)
def test_forward_signature(model_class):
    assert list(inspect.signature(model_class(_config()).forward).parameters)[:1] == ["pixel_values"]


def test_channels_follow_out_features():
    config = _config()
    model = UnipBackbone(config)
    assert len(model.channels) == len(config.out_features)
    assert model.channels == [model.num_features[config.stage_names.index(f)] for f in config.out_features]
    for field in ("out_features", "out_indices"):
        changed = copy.deepcopy(config)
        setattr(changed, field, None)
        model = UnipBackbone(changed)
        assert model.channels == [model.num_features[-1]]


def test_create_from_modified_config():
    config, inputs = _config(), _inputs()
    out = UnipBackbone(config).eval()(**inputs)
    assert len(out.feature_maps) == len(config.out_features) == len(config.out_indices)
    for field in ("out_features", "out_indices"):
        changed = copy.deepcopy(config)
        setattr(changed, field, None)
        model = UnipBackbone(changed).eval()
        assert len(model(**inputs).feature_maps) == 1 and len(model.channels) == 1
    changed = copy.deepcopy(config)
    changed.use_pretrained_backbone = False
    assert len(UnipBackbone(changed).eval()(**inputs).feature_maps) == 2


def test_backbone_common_attributes():
    backbone = UnipBackbone(_config())
    for name in ("backbone_type", "stage_names", "num_features", "out_indices", "out_features",
                 "out_feature_channels", "channels"):
        assert hasattr(backbone, name)
    assert isinstance(backbone.backbone_type, BackboneType) and backbone.num_features is not None
    assert len(backbone.channels) == len(backbone.out_indices) <= len(backbone.num_features)
    assert len(backbone.stage_names) == len(backbone.num_features) == len(backbone.out_feature_channels)


def test_backbone_outputs():
    config, inputs = _config(out_features=list(STAGES)), _inputs()
    backbone = UnipBackbone(config).eval()
    out = backbone(**inputs)
    assert isinstance(out.feature_maps, tuple) and len(out.feature_maps) == len(backbone.channels)
    strides = [16, 4, 8, 16, 32]  # stem, stage1..4
    for fmap, c, s in zip(out.feature_maps, backbone.channels, strides, strict=True):
        assert tuple(fmap.shape) == (2, c, 32 // s, 48 // s)
    assert out.hidden_states is None and out.attentions is None
    out = backbone(**inputs, output_hidden_states=True)
    assert len(out.hidden_states) == 1 + config.num_hidden_layers  # embeddings + blocks, (B, 1 + N, C)
    assert all(tuple(h.shape) == (2, 7, 32) for h in out.hidden_states)
    out = backbone(**inputs, output_attentions=True)
    assert len(out.attentions) == config.num_hidden_layers
    assert all(tuple(a.shape) == (2, 2, 7, 7) for a in out.attentions)  # (B, heads, 1 + 2*3, 1 + 2*3)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, 2, 7))


def test_stage_maps_equal_through_every_path():
    """The fused pyramid path and the explicit hidden-state path give the same stages."""
    backbone = UnipBackbone(_config(out_features=list(LEVELS))).eval()
    inputs = _inputs()
    with torch.no_grad():
        fused = backbone(**inputs).feature_maps
        explicit = backbone(**inputs, output_attentions=True, output_hidden_states=True).feature_maps
    for a, b in zip(fused, explicit, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------- common model tests
@pytest.mark.parametrize("model_class", CLASSES)
def test_attention_only_when_asked(model_class, monkeypatch):
    calls = []
    explicit = Block.forward_with_logits
    monkeypatch.setattr(Block, "forward_with_logits", lambda self, x: calls.append(1) or explicit(self, x))
    model = model_class(_config()).eval()
    model(**_inputs(), output_hidden_states=True)
    assert calls == []
    model(**_inputs(), output_attentions=True)
    assert len(calls) == 2


def test_model_hidden_states_and_attentions():
    config = _config()
    model = UnipModel(config).eval()
    out = model(**_inputs(), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert all(tuple(h.shape) == (2, 7, 32) for h in out.hidden_states)
    assert len(out.attentions) == config.num_hidden_layers and tuple(out.attentions[0].shape) == (2, 2, 7, 7)
    plain = model(**_inputs())
    assert plain.hidden_states is None and plain.attentions is None
    torch.testing.assert_close(plain.last_hidden_state, out.last_hidden_state, atol=1e-5, rtol=1e-5)
    config.output_hidden_states = True
    assert len(UnipModel(config).eval()(**_inputs()).hidden_states) == 3  # the config's default is honoured


@pytest.mark.parametrize("model_class", CLASSES)
def test_retain_grad_hidden_states(model_class):
    # transformers also asks attentions[0].grad; ours are softmax(logits) beside the block (its explicit path
    # returns the logits), so they are off the output's graph: that one check does not hold
    model = model_class(_config(out_features=list(STAGES)))
    out = model(**_inputs(), output_hidden_states=True, output_attentions=True)
    hidden = out.hidden_states[0]
    hidden.retain_grad()
    first = out.feature_maps[-1] if model_class is UnipBackbone else out.last_hidden_state
    first.flatten()[0].backward(retain_graph=True)
    assert hidden.grad is not None and out.attentions[0].requires_grad


@pytest.mark.parametrize("model_class", CLASSES)
def test_tuple_and_dict_outputs_agree(model_class):
    model = model_class(_config()).eval()
    with torch.no_grad():
        as_dict = model(**_inputs(), output_hidden_states=True, output_attentions=True)
        as_tuple = model(**_inputs(), output_hidden_states=True, output_attentions=True, return_dict=False)
    flat = [t for v in as_dict.to_tuple() for t in (v if isinstance(v, tuple) else (v,))]
    flat_tuple = [t for v in as_tuple for t in (v if isinstance(v, tuple) else (v,))]
    assert len(flat) == len(flat_tuple)
    for a, b in zip(flat, flat_tuple, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("model_class", CLASSES)
def test_save_load_round_trip(model_class, tmp_path):
    model = model_class(_config(drop_path_rate=0.1)).eval()
    model.save_pretrained(tmp_path / "m")
    # transformers 5.24's AutoBackbone.from_pretrained asks the Hub for every name (no local folders): the class
    loader = UnipBackbone if model_class is UnipBackbone else AutoModel
    again = loader.from_pretrained(tmp_path / "m").eval()
    assert type(again) is model_class
    assert {k: v for k, v in again.config.to_dict().items() if k != "_name_or_path"} == {
        k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"}
    with torch.no_grad():
        for a, b in zip(model(**_inputs()).to_tuple(), again(**_inputs()).to_tuple(), strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_folder_saved_before_the_stem_stage_loads(tmp_path):
    model = UnipBackbone(_config(out_features=list(LEVELS))).eval()
    model.save_pretrained(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    saved = json.loads(path.read_text())
    saved.update(out_indices=[0, 1, 2, 3], stage_names=LEVELS)  # what the earlier release wrote
    path.write_text(json.dumps(saved))
    again = UnipBackbone.from_pretrained(tmp_path / "old")
    assert again.out_features == LEVELS and again.out_indices == [1, 2, 3, 4]


def test_auto_config_and_deterministic_eval():
    config = AutoConfig.for_model("unip", **TINY)
    assert isinstance(config, UnipConfig) and isinstance(AutoModel.from_config(config), UnipModel)
    model = UnipBackbone(_config(drop_path_rate=0.5)).eval()
    with torch.no_grad():
        first, second = model(**_inputs()).feature_maps, model(**_inputs()).feature_maps
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
