"""The documentation runs: every ```python block of README.md and docs/*.md, as written, offline.

The blocks of one page run in order in one namespace (as a reader pastes them into one session), each page in its
own temporary working folder. That folder holds small stand-in files under the names the pages use
(:func:`_write_stand_ins`: thermal frames, segmenter checkpoints in the research (mmseg) and unip layouts,
distillation outputs, a teacher file); released weights are found through ``$UNIP_WEIGHTS_DIR`` (files in the
released layout with random values), the Hugging Face hub is offline, and ``torch.hub.load("casiatao/UNIP", ...)``
loads this checkout (``source="local"``). Every block is one test, named ``page:line``.

Skip convention: a block whose opening fence is preceded (blank lines allowed) by the line
``<!-- docs-test: skip <why> -->`` is not run and shows as a skipped test with that reason. It is for code that
needs what a test cannot have: a user's large files or datasets, a download, hours of compute. Keep it rare.
"""

from __future__ import annotations

import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HUB_REPO = "casiatao/UNIP"
_FENCE = re.compile(r"^(\s*)```\s*(python|py|python3)\s*$")
_CLOSE = re.compile(r"^\s*```\s*$")
_SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip\b\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced Python block: its page, the line of its first code line (1-based), its code, a skip reason."""

    page: Path
    line: int
    code: str
    skip: str | None = None


def _dedent(line: str, indent: int) -> str:
    """``line`` without the fence's indentation (a shorter indentation is removed entirely)."""
    return line[indent:] if line[:indent].isspace() or not indent else line.lstrip()


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of a Markdown page, dedented to their fence, with their skip markers."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, start = len(m.group(1)), i + 1
        end = next((j for j in range(start, len(lines)) if _CLOSE.match(lines[j])), len(lines))
        code = "\n".join(_dedent(ln, indent) for ln in lines[start:end])
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _SKIP.match(prev)
        blocks.append(Block(page, start + 1, code + "\n", (marker.group(1) or "marked skip") if marker else None))
        i = end + 1
    return blocks


# ------------------------------------------------------------------------------------------------- stand-ins
def _frames(folder: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    raw = (rng.normal(7500, 300, (96, 128)) + np.linspace(0, 800, 128)).astype(np.uint16)  # radiometric counts
    Image.fromarray(raw).save(folder / "frame_16bit.tiff")
    Image.fromarray((raw // 40).astype(np.uint8)).save(folder / "frame.png")


def _segmenters(folder: Path) -> None:
    from helpers.segmenters import to_mmseg_state_dict

    from unip_hub.checkpoints.segmenter_files import save_segmenter_checkpoint
    from unip_hub.hub.segmenters import create_segmenter

    for classes, mmseg_name, unip_names in ((21, "iter_14400.pth", ("runs/soda/best.pth", "runs/soda-s/best.pth")),
                                            (9, "iter_9800.pth", ())):
        torch.manual_seed(classes)
        names = [f"class_{k}" for k in range(classes)]
        seg = create_segmenter("unip_vit_small", num_classes=classes, class_names=names).eval()
        meta = {"CLASSES": tuple(names), "PALETTE": [[7 * k % 256, 3 * k % 256, 11 * k % 256] for k in range(classes)],
                "iter": int(mmseg_name[5:-4])}
        torch.save({"meta": meta, "state_dict": to_mmseg_state_dict(seg)}, folder / mmseg_name)
        for name in unip_names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            save_segmenter_checkpoint(seg, folder / name)


def _distilled(folder: Path) -> None:
    from helpers.checkpoints import make_official_checkpoint

    from unip_hub.models.vit import UnipViT
    from unip_hub.train.distill import build_student

    run = folder / "runs" / "unip_s_mae_l"
    run.mkdir(parents=True)
    make_official_checkpoint(run / "checkpoint-099.pth", "unip_vit_small")
    build_student("unip_vit_small", last_heads=16).save_pretrained(run / "student")
    torch.manual_seed(0)  # a narrow stand-in for the MAE-L teacher file: 24 blocks (2 heads), MAE layout
    teacher = UnipViT(img_size=224, embed_dim=128, depth=24, num_heads=2)
    torch.save({"model": {**teacher.state_dict(), "decoder_embed.weight": torch.zeros(8, 128)}},
               folder / "mae_pretrain_vit_large.pth")


def _write_stand_ins(folder: Path) -> None:
    """The files the pages name, small and random, in the layouts the pages describe."""
    folder.mkdir(parents=True, exist_ok=True)
    _frames(folder)
    _segmenters(folder)
    _distilled(folder)


def _write_weights(folder: Path) -> None:
    """Released-layout files (random values) for the registry entries of the backbones the pages use.

    The pages also name them as local files (``file="unip_vit_small_by_mae_large.pth"``): each page's folder links
    them too.
    """
    from helpers.checkpoints import make_official_checkpoint

    from unip_hub.hub.registry import list_entries

    folder.mkdir(parents=True, exist_ok=True)
    code = "".join(b.code for page in PAGES for b in python_blocks(page) if b.skip is None)
    archs = {"unip_vit_tiny", "unip_vit_small"}
    if re.search(r"unip_vit_base|\bunip_b\b|vit_base_patch16_224\.\w+_large", code):
        archs.add("unip_vit_base")
    for entry in list_entries():
        if entry.arch in archs:  # ViT-B files (350 MB) only when a page uses them; ViT-L has no released file
            make_official_checkpoint(folder / entry.filename, entry.arch, last_heads=entry.last_heads or 16)


@pytest.fixture(scope="session")
def docs_env(tmp_path_factory) -> dict[str, Path]:
    """Folders of the stand-in files and of the released-layout weights (built once per session)."""
    base = tmp_path_factory.mktemp("docs_env")
    _write_stand_ins(base / "files")
    _write_weights(base / "weights")
    return {"files": base / "files", "weights": base / "weights", "work": base / "pages"}


# ----------------------------------------------------------------------------------------------- running pages
@dataclass
class _PageRun:
    """The namespace and progress of one page: blocks run once each, in order."""

    blocks: list[Block]
    workdir: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})
    done: int = -1
    errors: dict[int, str] = field(default_factory=dict)

    def run_through(self, index: int) -> None:
        while self.done < index:
            self.done += 1
            block = self.blocks[self.done]
            if block.skip is None:
                self._run(self.done, block)
        if self.done == len(self.blocks) - 1:
            self.namespace.clear()  # the page is done: free its models

    def _run(self, index: int, block: Block) -> None:
        name = f"{_rel(block.page)}:{block.line}"
        cwd = os.getcwd()
        os.chdir(self.workdir)
        try:
            exec(compile("\n" * (block.line - 1) + block.code, str(block.page), "exec"), self.namespace)
        except Exception as e:  # any failure of a documented block is the test's failure
            frames = traceback.extract_tb(e.__traceback__)
            own = [f for f in frames if f.filename == str(block.page)]  # the page's failing line first
            tb = "".join(traceback.format_list(own[-1:] + [f for f in frames[-2:] if f not in own]))
            self.errors[index] = f"the block at {name} fails as written: {type(e).__name__}: {e}\n{tb}"
        finally:
            os.chdir(cwd)


_RUNS: dict[Path, _PageRun] = {}


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def _page_run(page: Path, env: dict[str, Path]) -> _PageRun:
    if page not in _RUNS:
        work = env["work"] / page.stem
        work.mkdir(parents=True)
        for item in [*env["files"].iterdir(), *env["weights"].iterdir()]:  # links: pages write beside them
            (work / item.name).symlink_to(item, target_is_directory=item.is_dir())
        _RUNS[page] = _PageRun(python_blocks(page), work)
    return _RUNS[page]


def _offline(monkeypatch: pytest.MonkeyPatch, env: dict[str, Path]) -> None:
    """Weights from the stand-in folder, no network, torch.hub on this checkout."""
    monkeypatch.setenv("UNIP_WEIGHTS_DIR", str(env["weights"]))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    real_load = torch.hub.load

    def local_hub_load(repo_or_dir: str, model: str, *args: Any, source: str = "github", **kwargs: Any) -> Any:
        if source == "github" and repo_or_dir.split(":")[0] == HUB_REPO:
            repo_or_dir, source = str(ROOT), "local"
        return real_load(repo_or_dir, model, *args, source=source, **kwargs)

    monkeypatch.setattr(torch.hub, "load", local_hub_load)


def _cases() -> list[Any]:
    cases = []
    for page in PAGES:
        for i, block in enumerate(python_blocks(page)):
            cases.append(pytest.param(page, i, id=f"{_rel(page)}:{block.line}"))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("page", "index"), _cases())
def test_doc_block_runs(page: Path, index: int, docs_env, monkeypatch):
    run = _page_run(page, docs_env)
    block = run.blocks[index]
    if block.skip is not None:
        pytest.skip(f"{page.name}:{block.line}: {block.skip}")
    _offline(monkeypatch, docs_env)
    torch.manual_seed(0)
    run.run_through(index)
    if index in run.errors:
        pytest.fail(run.errors[index], pytrace=False)


# ----------------------------------------------------------------------------------------------- the collector
def test_collector_finds_blocks_markers_and_lines(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# t\n\n```python\nfor i in range(2):\n    x = i\n```\n\ntext\n\n"
                    "<!-- docs-test: skip needs your data -->\n\n```python\ny = open('mine.tif')\n```\n\n"
                    "```bash\nunip demo\n```\n\n- item:\n\n"
                    "  ```py\n  z = x + 1\n  assert z == 2\n  ```\n")
    blocks = python_blocks(page)
    assert [(b.line, b.code, b.skip) for b in blocks] == [(4, "for i in range(2):\n    x = i\n", None),
                                                         (13, "y = open('mine.tif')\n", "needs your data"),
                                                         (23, "z = x + 1\nassert z == 2\n", None)]
    run = _PageRun(blocks, tmp_path)
    run.run_through(1)
    assert run.namespace["x"] == 1 and "y" not in run.namespace  # the marked block did not run
    run.run_through(2)
    assert not run.errors and not run.namespace  # the last block passed its assert; the page's names are freed
    bad = tmp_path / "bad.md"
    bad.write_text("```python\nimport math\n\nmath.nope\n```\n")
    run = _PageRun(python_blocks(bad), tmp_path)
    run.run_through(0)
    assert "bad.md" in run.errors[0] and "AttributeError" in run.errors[0] and 'line 4' in run.errors[0]


def test_every_page_is_collected():
    assert PAGES[0].name == "README.md" and len(PAGES) > 1
    assert sum(len(python_blocks(p)) for p in PAGES) >= 10
