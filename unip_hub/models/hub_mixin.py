"""Hugging Face Hub support for the model classes (SMP ``base/hub_mixin.py`` style).

``save_pretrained`` writes ``model.safetensors`` + ``config.json`` (the constructor arguments plus provenance)
+ a generated model card; ``from_pretrained`` reads them back and loads *strictly* through the package's one
loading module; ``push_to_hub`` publishes the folder. The file I/O lives in ``huggingface_hub`` and
:mod:`unip_hub.checkpoints`, not in the model classes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, PyTorchModelHubMixin


class UnipHubMixin(
    PyTorchModelHubMixin,
    library_name="unip",
    license="apache-2.0",
    repo_url="https://github.com/casiatao/UNIP",
    paper_url="https://arxiv.org/abs/2502.02257",
    tags=["unip", "infrared", "thermal", "vision-transformer", "image-feature-extraction"],
):
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` with strict safetensors loading."""

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        config = {**(self._hub_mixin_config or {}), "architecture": type(self).__name__}
        pretrained_cfg = getattr(self, "pretrained_cfg", None)
        if pretrained_cfg:
            config["pretrained_cfg"] = pretrained_cfg
        (save_directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=list))

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
        from unip_hub.checkpoints import load_state_dict_strict, read_checkpoint
        from unip_hub.checkpoints.read import SAFETENSORS_NAME

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

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """A card with the architecture, provenance, normalisation, paper numbers and usage snippets."""
        from unip_hub.hub.model_card import render_model_card

        return render_model_card(self._hub_mixin_info.model_card_data, dict(self._hub_mixin_config or {}),
                                 getattr(self, "pretrained_cfg", None), type(self).__name__)
