"""The engine the tasks share (segmentation, detection): the predictor core (one read, one scaling, one tensor per
raw input; a raw door and a prepared-tensor door) and the output core (input listing, all-or-none writing, the
per-input loop). The training core is :mod:`unip_hub.train.core` and :mod:`unip_hub.train.engine`."""

from unip_hub.engine.outputs import list_inputs, run_files, write_all_or_none
from unip_hub.engine.predictor import BasePredictor, Prepared

__all__ = ["BasePredictor", "Prepared", "list_inputs", "run_files", "write_all_or_none"]
