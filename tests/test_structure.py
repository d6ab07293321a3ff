"""The layering rules of docs/architecture.md, checked on the source: model code imports no I/O layer, and no
two modules of the package import each other in a cycle (counting imports inside functions too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "unip_hub"
MODEL_LAYERS = ("layers", "models", "necks", "heads")
FORBIDDEN = ("data", "inference", "hub", "train", "cli", "benchmark", "integrations", "analysis")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """unip_hub modules imported by ``path`` (relative imports resolved); optionally only module-level ones."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # also imports inside module-level try/if blocks
        nodes = [n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                 for n in ast.walk(top)]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("unip_hub")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("unip_hub"):
                found.add(mod)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("layer", MODEL_LAYERS)
def test_model_code_imports_no_io_layer(layer):
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for mod in _imports(path, top_level_only=False):
            if mod.split(".")[1] in FORBIDDEN:
                bad.append(f"{path.relative_to(PACKAGE)} imports {mod}")
    assert not bad, "model code must take and return tensors:\n" + "\n".join(bad)


def test_model_code_does_no_file_io():
    calls = ("open(", "torch.load(", "torch.save(", "hf_hub_download(", "Image.open(", ".read_text(", ".write_")
    bad = [f"{p.relative_to(PACKAGE)}: {c}" for layer in MODEL_LAYERS for p in sorted((PACKAGE / layer).rglob("*.py"))
           for c in calls if c in p.read_text()]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    modules = {_module_name(p): p for p in SOURCES}

    def resolve(mod: str) -> str | None:
        while mod and mod not in modules:
            mod = mod.rpartition(".")[0]
        return mod or None

    graph = {m: {r for i in _imports(p, top_level_only=False) if (r := resolve(i)) and r != m}
             for m, p in modules.items()}
    # a package __init__ importing its own submodules is not a cycle worth reporting; drop parent -> child edges
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


ROOT = PACKAGE.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
_PATH = re.compile(r"(?<![\w.])((?:[\w.-]+/)*[\w-]+(?:\.(?:py|json|md|txt|sh)|/)|\.ci/run)(?![\w/])")


def _named_paths(text: str) -> list[tuple[str, tuple[Path, ...]]]:
    """Every file or folder docs/architecture.md names, with the places it may be relative to: inside the tree
    block a bare name belongs to the folder of the entry it is listed under (``data/`` ... ``readers.py``)."""
    named: list[tuple[str, tuple[Path, ...]]] = []
    blocks = text.split("```")
    tree = next(b for b in blocks if b.lstrip("\n").startswith("hubconf.py"))
    folder = ROOT
    for line in tree.splitlines():
        entry = line.split()[0] if line.strip() else ""
        if line[:1].strip():  # a top-level entry of the repository
            folder = ROOT / entry if entry.endswith("/") else ROOT
        elif line.startswith("  ") and not line.startswith("   ") and entry:  # a package entry under unip_hub/
            folder = PACKAGE / entry if entry.endswith("/") else PACKAGE
        for token in _PATH.findall(line):
            named.append((token, (folder, PACKAGE, ROOT)))
    for token in _PATH.findall("".join(blocks[i] for i in range(0, len(blocks), 2))):  # prose and tables
        named.append((token, (PACKAGE, ROOT)))
    return named


def test_every_path_in_the_architecture_document_exists():
    named = _named_paths(ARCHITECTURE.read_text())
    assert len(named) > 100  # the tree and the tables were found
    missing = sorted({token for token, bases in named
                      if not any((base / token.rstrip("/")).exists() for base in bases)})
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_architecture_document_lists_every_module():
    text = ARCHITECTURE.read_text()
    named = {token.rsplit("/", 1)[-1] for token, _ in _named_paths(text)}
    unlisted = sorted(str(p.relative_to(PACKAGE)) for p in SOURCES
                      if p.name != "__init__.py" and "__pycache__" not in p.parts and p.name not in named)
    assert not unlisted, f"modules missing from docs/architecture.md: {unlisted}"
