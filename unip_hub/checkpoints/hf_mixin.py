"""Hugging Face Hub support for the model classes (SMP ``base/hub_mixin.py`` style), kept in the loading package.

``save_pretrained`` writes ``model.safetensors`` + ``config.json`` (the constructor arguments plus provenance)
+ a generated model card; ``from_pretrained`` reads them back and loads *strictly* through
:func:`~unip_hub.checkpoints.strict.load_state_dict_strict`; ``push_to_hub`` publishes the folder. Model classes
inherit :class:`UnipHubMixin` and stay free of I/O: the reading, downloading and writing is done here and in
``huggingface_hub``. This module imports nothing from :mod:`unip_hub.models` (the models import it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import PyTorchModelHubMixin

from unip_hub.utils.atomic import write_text_atomic

__all__ = ["UnipHubMixin"]


class UnipHubMixin(
    PyTorchModelHubMixin,
    library_name="unip",
    license="apache-2.0",
    repo_url="https://github.com/casiatao/UNIP",
    paper_url="https://arxiv.org/abs/2502.02257",
    tags=["unip", "infrared", "thermal", "vision-transformer", "image-feature-extraction"],
):
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` with strict safetensors loading.

    A model class may define ``hub_arch()`` (the architecture name its card's snippets use) and a
    ``pretrained_cfg`` dict (registry entry or file provenance, saved into ``config.json``).
    """

    def hub_arch(self) -> str | None:
        """Architecture name for the model card; ``None`` when the class has no named sizes."""
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        config = {**(self._hub_mixin_config or {}), "architecture": type(self).__name__}
        pretrained_cfg = getattr(self, "pretrained_cfg", None)
        if pretrained_cfg:
            config["pretrained_cfg"] = pretrained_cfg
        write_text_atomic(json.dumps(config, indent=2, sort_keys=True, default=list), save_directory / "config.json")

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ):
        from unip_hub.checkpoints.read import SAFETENSORS_NAME, read_checkpoint
        from unip_hub.checkpoints.strict import load_state_dict_strict

        if not strict:
            raise ValueError("unip models always load strictly: a partial load would hide a wrong file")
        if model_kwargs.get("last_heads") == "distilled":
            if model_kwargs.get("distilled_last_heads") is None:
                raise ValueError(f"{model_id} does not record a distilled head count; pass last_heads=<int>")
            model_kwargs["last_heads"] = model_kwargs["distilled_last_heads"]
        if os.path.isdir(model_id):
            weights = Path(model_id) / SAFETENSORS_NAME
        else:
            from huggingface_hub import hf_hub_download

            weights = Path(hf_hub_download(model_id, SAFETENSORS_NAME, revision=revision, cache_dir=cache_dir,
                                           force_download=force_download, token=token,
                                           local_files_only=local_files_only))
        model = cls(**model_kwargs)
        load_state_dict_strict(model, read_checkpoint(weights), source=str(weights))
        return model.to(map_location).eval()

    def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
        """A card with the architecture, provenance, normalisation, paper numbers and usage snippets."""
        from unip_hub.checkpoints.model_card import render_model_card

        return render_model_card(self._hub_mixin_info.model_card_data, dict(self._hub_mixin_config or {}),
                                 getattr(self, "pretrained_cfg", None), type(self).__name__, arch=self.hub_arch())
