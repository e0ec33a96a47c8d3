"""What a job spec may name: model types and optimisers. No torch import here, so the
API validates specs without loading PyTorch; ``workers.zoo`` builds these models."""

from __future__ import annotations

MODEL_TYPES = ("logreg", "mlp", "cnn")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "step", "cosine", "one_cycle")
PRECISIONS = ("fp32", "bf16", "fp16")
RECIPE_FIELDS = (  # the spec fields stored on the job as they are
    "model_args",
    "weight_decay",
    "nesterov",
    "lr_schedule",
    "warmup_epochs",
    "grad_clip_norm",
    "label_smoothing",
    "augment",
    "precision",
    "eval_every",
    "early_stopping",
)
