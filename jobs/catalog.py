"""What a job spec may name: optimisers, schedules, precisions. No torch import here, so
the API validates specs without loading PyTorch.

Models are not listed here: a job names any model the workers publish
(``jobs.published_models``, GET /api/v1/architectures). The built-ins' names and inputs
stay, for when no worker has published yet (and for the dashboard's form then).
"""

from __future__ import annotations

# The project's own models (pyproject.toml's entry points: workers/zoo.py, workers/vision_zoo.py)
# and the input each takes; plugins add others.
BUILTIN_INPUT_KINDS = {
    "logreg": "any",
    "mlp": "any",
    "cnn": "images",
    "resnet18": "images",
    "resnet34": "images",
    "mobilenet_v3_small": "images",
    "efficientnet_b0": "images",
}
MODEL_TYPES = tuple(BUILTIN_INPUT_KINDS)
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "step", "cosine", "one_cycle")
PRECISIONS = ("fp32", "bf16", "fp16")
OUTER_OPTIMIZERS = ("average", "sgd", "nesterov")  # workers/outer.py
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
    "sync_every_steps",
    "outer_optimizer",
    "outer_learning_rate",
    "outer_momentum",
)
