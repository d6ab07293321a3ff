"""Training: fine-tuning segmenters (:mod:`.finetune`, :mod:`.engine`), evaluation (:mod:`.evaluate`), the synthetic
demo (:mod:`.demo`), and the utilities shared with distillation: lr schedules (:mod:`.lr`), parameter groups
(:mod:`.optim`), ``torchrun`` helpers (:mod:`.dist`) and atomic checkpoints (:mod:`.checkpointing`).

Nothing heavy is imported here; import the submodules you need.
"""
