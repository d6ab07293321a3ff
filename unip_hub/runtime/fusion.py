"""Attention fusion for ONNX Runtime: each block's decomposed attention -> one ``com.microsoft.MultiHeadAttention``.

``torch.onnx.export(dynamo=True)`` writes ``F.scaled_dot_product_attention`` as its decomposition: the qkv linear,
a reshape to (B, N, 3, H, D) and a permute, three slices, ``q * s`` and ``k^T * s`` (``s = D ** -0.25``),
``softmax(q k^T) v``, a transpose and a reshape back to (B, N, C). ONNX Runtime's own transformer optimiser
(``onnxruntime.transformers.optimizer``, ``model_type="vit"``) does not recognise that pattern (it fuses
SkipLayerNormalization and BiasGelu, not Attention), so the (B, H, N, N) logits are written to memory and read
back twice per block. :func:`fuse_attention` finds the pattern around every ``Softmax`` and replaces it with

    Split(qkv, [C, C, C], axis=-1) -> q, k, v (B, N, C);  MultiHeadAttention(q, k, v, num_heads=H, scale=D ** -0.5)

which ONNX Runtime's CPU provider runs as a tiled (flash-style) kernel. The graph is otherwise unchanged; nodes
left without consumers are removed. The caller checks the fused graph against eager (the export's tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AttentionSite", "find_attention", "fuse_attention"]

_WALK = ("Mul", "Reshape", "Transpose", "Squeeze", "Slice", "Unsqueeze")  # single-path ops between qkv and q/k/v
_HEADS_PERM = [2, 0, 3, 1, 4]  # (B, N, 3, H, D) -> (3, B, H, N, D)


@dataclass(frozen=True)
class AttentionSite:
    """One decomposed attention: the qkv linear's output (B, N, 3C) and the (B, N, C) tensor it ends in."""

    qkv: str
    output: str
    end_node: int  # index of the node producing ``output`` (the reshape back to (B, N, C))


def _perm(node: Any) -> list[int] | None:
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def _qkv_source(name: str, producer: dict[str, Any], limit: int = 8) -> str | None:
    """The (B, N, 3C) tensor ``name`` was sliced from: walk up to the (2, 0, 3, 1, 4) permute, then its reshape."""
    for _ in range(limit):
        node = producer.get(name)
        if node is None or node.op_type not in _WALK:
            return None
        if node.op_type == "Transpose" and _perm(node) == _HEADS_PERM:
            reshape = producer.get(node.input[0])
            return reshape.input[0] if reshape is not None and reshape.op_type == "Reshape" else None
        name = node.input[0]
    return None


def _only_consumer(name: str, consumers: dict[str, list[Any]], op: str) -> Any | None:
    nodes = consumers.get(name, [])
    return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None


def find_attention(graph: Any) -> list[AttentionSite]:
    """The decomposed attentions of ``graph`` (an ``onnx.GraphProto``), in graph order."""
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    index = {id(n): i for i, n in enumerate(graph.node)}
    sites = []
    for softmax in (n for n in graph.node if n.op_type == "Softmax"):
        logits = producer.get(softmax.input[0])
        mixed = _only_consumer(softmax.output[0], consumers, "MatMul")
        if logits is None or logits.op_type != "MatMul" or mixed is None or mixed.input[0] != softmax.output[0]:
            continue
        heads_back = _only_consumer(mixed.output[0], consumers, "Transpose")
        if heads_back is None or _perm(heads_back) != [0, 2, 1, 3]:
            continue
        merged = _only_consumer(heads_back.output[0], consumers, "Reshape")
        sources = {_qkv_source(n, producer) for n in (logits.input[0], logits.input[1], mixed.input[1])}
        if merged is None or len(sources) != 1 or None in sources:
            continue
        sites.append(AttentionSite(sources.pop(), merged.output[0], index[id(merged)]))
    return sites


def _prune(graph: Any) -> None:
    """Removes nodes whose outputs nobody reads and initialisers no node reads (in place)."""
    import onnx

    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
            for a in node.attribute:  # subgraphs (If / Loop) read names too
                if a.type == onnx.AttributeProto.GRAPH:
                    needed.update(i for n in a.g.node for i in n.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    used = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)


def fuse_attention(src: str | Path, dst: str | Path, heads: Sequence[int], width: Sequence[int]) -> int:
    """Writes ``src`` with its attentions fused (see the module docstring) to ``dst``; returns how many.

    Args:
        src: The exported graph.
        dst: Where the fused graph goes (may be ``src``).
        heads: Heads of the model's attentions in graph order (one entry repeated for every block is fine when
            all blocks have the same count).
        width: Their widths C (= heads x head dim), likewise.

    Raises:
        ValueError: The graph has more attentions than ``heads`` entries and the heads are not all equal.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    sites = find_attention(graph)
    if not sites:
        return 0
    if len(sites) > len(heads) and len(set(heads)) > 1:
        raise ValueError(f"{len(sites)} attentions in the graph but {len(heads)} head counts given")
    new_nodes: dict[int, list[Any]] = {}
    for i, site in enumerate(sites):
        h, c = (heads[i], width[i]) if i < len(heads) else (heads[0], width[0])
        split = f"unip_attn{i}_split"
        graph.initializer.append(numpy_helper.from_array(np.array([c, c, c], dtype=np.int64), split))
        q, k, v = (f"unip_attn{i}_{p}" for p in "qkv")
        new_nodes[site.end_node] = [
            helper.make_node("Split", [site.qkv, split], [q, k, v], name=f"unip_attn{i}/split", axis=-1),
            helper.make_node("MultiHeadAttention", [q, k, v], [site.output], name=f"unip_attn{i}/mha",
                             domain="com.microsoft", num_heads=int(h), scale=float((c // h) ** -0.5)),
        ]
    nodes = []
    for j, node in enumerate(graph.node):
        nodes.extend(new_nodes.get(j, [node]))  # the reshape back to (B, N, C) is replaced by the fused pair
    del graph.node[:]
    graph.node.extend(nodes)
    _prune(graph)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return len(sites)
