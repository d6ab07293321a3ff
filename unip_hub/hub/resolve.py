"""Finding a weight file: explicit path > ``$UNIP_WEIGHTS_DIR`` > Hugging Face cache > download.

A recorded sha256 is checked on every resolution; a mismatching file that came from the Hugging Face cache is
evicted from it (snapshot link and blob) so that the next call downloads it afresh. Nothing ever falls back to
random weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from unip_hub.checkpoints.read import CONFIG_NAME, SAFETENSORS_NAME, CheckpointError, sha256sum
from unip_hub.hub.registry import Weights, WeightsEntry, find_entry_by_filename, get_weights_entry

ENV_WEIGHTS_DIR = "UNIP_WEIGHTS_DIR"
HF_PREFIX = "hf-hub:"


class WeightsNotFoundError(FileNotFoundError):
    """A released checkpoint could not be found locally nor downloaded."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file ready to read, with what is known about it."""

    path: Path
    entry: WeightsEntry | None = None
    config: dict | None = None

    @property
    def distilled_last_heads(self) -> int | None:
        """The last-block head count the weights were distilled with, when known."""
        if self.entry is not None:
            return self.entry.last_heads
        return (self.config or {}).get("distilled_last_heads")


def _how_to_supply(entry: WeightsEntry) -> str:
    return (f"Supply it in one of three ways: (1) pass weights='/path/to/{entry.filename}'; (2) put the file in a "
            f"folder and set {ENV_WEIGHTS_DIR} to it; (3) go online once (unset HF_HUB_OFFLINE) or run "
            f"`huggingface-cli download {entry.hf_repo} {entry.filename}` to fill the Hugging Face cache.")


def _evict(path: Path) -> None:
    blob = path.resolve()
    for p in {path, blob}:
        p.unlink(missing_ok=True)


def verify_sha256(path: Path, entry: WeightsEntry | None, evict: bool = False) -> None:
    """Raises :class:`CheckpointError` when ``entry`` records a sha256 that ``path`` does not have."""
    if entry is None or not entry.sha256:
        return
    digest = sha256sum(path)
    if digest != entry.sha256:
        if evict:
            _evict(path)
        where = " It was removed from the Hugging Face cache; the next call downloads it again." if evict else ""
        raise CheckpointError(f"{path} has sha256 {digest}, but {entry.name} is recorded as {entry.sha256}: the file "
                              f"is corrupt, truncated or not the released one.{where}")


def download_entry(entry: WeightsEntry, cache_dir: str | Path | None = None, force_download: bool = False) -> Path:
    """The local path of a released file: ``$UNIP_WEIGHTS_DIR``, then the HF cache, then a download."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    local_dir = os.environ.get(ENV_WEIGHTS_DIR)
    if local_dir and (Path(local_dir) / entry.filename).is_file():
        path = Path(local_dir) / entry.filename
        verify_sha256(path, entry)
        return path
    if not force_download:
        cached = try_to_load_from_cache(entry.hf_repo, entry.filename, cache_dir=cache_dir, revision=entry.revision)
        if isinstance(cached, str):
            verify_sha256(Path(cached), entry, evict=True)
            return Path(cached)
    if constants.HF_HUB_OFFLINE:
        raise WeightsNotFoundError(f"{entry.name}: {entry.filename} from the Hugging Face repo {entry.hf_repo} is "
                                   f"not in the local cache and HF_HUB_OFFLINE is set. {_how_to_supply(entry)}")
    try:
        path = Path(hf_hub_download(entry.hf_repo, entry.filename, revision=entry.revision, cache_dir=cache_dir,
                                    force_download=force_download))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as e:
        raise WeightsNotFoundError(f"{entry.name}: could not download {entry.filename} from the Hugging Face repo "
                                   f"{entry.hf_repo} ({type(e).__name__}: {e}). {_how_to_supply(entry)}") from e
    verify_sha256(path, entry, evict=True)
    return path


def read_folder_config(path: Path) -> dict | None:
    """``config.json`` of a Hugging Face folder, or ``None`` for a file / a folder without one."""
    cfg = path / CONFIG_NAME if path.is_dir() else None
    return json.loads(cfg.read_text()) if cfg is not None and cfg.is_file() else None


def _download_hf_repo(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=[SAFETENSORS_NAME, CONFIG_NAME]))
    except Exception as e:  # huggingface_hub raises many error types here; all mean "not available"
        raise WeightsNotFoundError(f"could not get {SAFETENSORS_NAME} + {CONFIG_NAME} of the Hugging Face repo "
                                   f"{repo_id} ({type(e).__name__}: {e}); pass a local folder instead") from e


def resolve_weights(arch: str, weights: Weights | str | os.PathLike, revision: str | None = None) -> ResolvedWeights:
    """Turns what a user passed as ``weights`` into a readable file.

    Args:
        arch: The architecture being built (``unip_vit_small``...), to look up registry tags.
        weights: A :class:`Weights` member or tag (``"mae_large"``, ``"unip_vit_small.mae_large"``), a path to a
            ``.pth``/``.safetensors`` file or a Hugging Face model folder, or ``"hf-hub:owner/name"``.
        revision: Git revision for ``hf-hub:`` repos.
    """
    if isinstance(weights, Weights):
        entry = get_weights_entry(arch, weights)
        return ResolvedWeights(download_entry(entry), entry)
    text = os.fspath(weights)
    if text.startswith(HF_PREFIX):
        folder = _download_hf_repo(text[len(HF_PREFIX):], revision)
        return ResolvedWeights(folder, None, read_folder_config(folder))
    path = Path(text).expanduser()
    if path.exists():
        entry = find_entry_by_filename(path.name) if path.is_file() else None
        if entry is not None and entry.arch != arch:
            entry = None
        if path.is_file():
            verify_sha256(path, entry)
        return ResolvedWeights(path, entry, read_folder_config(path))
    looks_like_path = any(c in text for c in "/\\") or path.suffix in {".pth", ".pt", ".bin", ".safetensors"}
    if looks_like_path:
        raise FileNotFoundError(f"weights file {path} does not exist")
    entry = get_weights_entry(arch, text)
    return ResolvedWeights(download_entry(entry), entry)
