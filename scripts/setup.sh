#!/usr/bin/env bash
# Creates .venv (if missing) and installs unip with every optional integration and the test tools.
# torch/torchvision are pinned in constraints.txt for this project's machines; pyproject.toml keeps ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt "$@"; }
pip_install torch torchvision
pip_install hatchling -e ".[test]"
pip_install -e ".[seq]"  # flirpy for the SEQ tests (~11 s; it caps numpy below 2.4)
.venv/bin/python -c "import torch, timm, unip_hub; print(f'unip {unip_hub.__version__}, torch {torch.__version__}, timm {timm.__version__}')"
