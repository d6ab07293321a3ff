"""Publishing a converted UNIP folder (``unip convert`` output) to the Hugging Face Hub, as it is.

The folder is first loaded strictly (its weights must fit its ``config.json``), then its three files --
``model.safetensors``, ``config.json`` (constructor arguments + registry provenance) and the generated
``README.md`` model card -- are uploaded in one commit. Uploading the files rather than re-saving a loaded model
keeps the provenance (teacher, layer, revision, paper numbers) that only the converted folder records.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from unip_hub.checkpoints.read import CONFIG_NAME, SAFETENSORS_NAME
from unip_hub.utils.atomic import write_text_atomic

CARD_NAME = "README.md"


def write_model_card(folder: str | os.PathLike) -> Path:
    """(Re)generates ``README.md`` of a converted folder from its ``config.json``; written atomically."""
    from unip_hub.checkpoints.model_card import render_model_card
    from unip_hub.models.vit import UnipViT, arch_from_shape

    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    data = copy.deepcopy(UnipViT._hub_mixin_info.model_card_data)  # library, licence, tags of save_pretrained
    card = render_model_card(data, config, config.get("pretrained_cfg"), config.get("architecture", "UnipViT"),
                             arch=arch_from_shape(config.get("embed_dim"), config.get("depth")))
    return write_text_atomic(str(card), folder / CARD_NAME)


def push_converted(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    branch: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Uploads a converted folder to ``repo_id`` (created if needed) and returns the commit URL.

    Args:
        folder: Output of ``unip convert`` / ``UnipViT.save_pretrained``.
        repo_id: ``owner/name`` on the Hugging Face Hub.
        private: Create the repository as private.
        branch: Push to this branch (created if missing) instead of ``main``; pin it later with ``revision``.
        token: Hugging Face token (default: the logged-in one).
        commit_message: Defaults to "Upload UNIP weights (<name>)".

    Raises:
        FileNotFoundError: ``folder`` lacks ``model.safetensors`` or ``config.json``.
        CheckpointError: the weights do not fit the config (nothing is uploaded).
    """
    from huggingface_hub import HfApi

    from unip_hub.models.vit import UnipViT

    folder = Path(folder)
    missing = [n for n in (SAFETENSORS_NAME, CONFIG_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: push a folder written by `unip convert` "
                                "(or save_pretrained)")
    UnipViT.from_pretrained(folder)  # strict: a folder whose weights do not fit its config is never published
    if not (folder / CARD_NAME).is_file():
        write_model_card(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    name = (config.get("pretrained_cfg") or {}).get("name", folder.name)
    api = HfApi(token=token)
    repo = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
    if branch:
        api.create_branch(repo_id=repo, branch=branch, exist_ok=True)
    info = api.upload_folder(repo_id=repo, folder_path=folder, revision=branch,
                             allow_patterns=[SAFETENSORS_NAME, CONFIG_NAME, CARD_NAME],
                             commit_message=commit_message or f"Upload UNIP weights ({name})")
    return str(getattr(info, "commit_url", info))
