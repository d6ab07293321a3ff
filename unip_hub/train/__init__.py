"""Training: fine-tuning segmenters and NMI-HAD distillation on one training core.

* :mod:`.core`: seeding, the AMP choice, the loss scaler, the step and epoch functions, the resume check (shared).
* :mod:`.config`: run-config dataclasses as command-line options (``unip finetune``, ``unip distill``).
* Fine-tuning: :mod:`.finetune_config` (settings), :mod:`.finetune_data` (datasets), :mod:`.engine` (loss and
  loop), :mod:`.finetune` (:func:`~.finetune.finetune`), :mod:`.evaluate`, :mod:`.demo` (``unip demo``).
* NMI-HAD: :mod:`.distill_model` (``NMIHAD``, ``build_student``), :mod:`.distill_loss`, :mod:`.distill_data`,
  :mod:`.distill_config`, :mod:`.distill_engine` (the run) and :mod:`.distill` (public names, ``python -m``).
* Utilities: lr schedules (:mod:`.lr`), parameter groups (:mod:`.optim`), ``torchrun`` helpers (:mod:`.dist`),
  training states and rng states (:mod:`.checkpointing`), run logs (:mod:`.logger`).

Nothing heavy is imported here; import the submodules you need.
"""
