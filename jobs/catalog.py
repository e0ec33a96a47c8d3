"""What a job spec may name: model types and optimisers. No torch import here, so the
API validates specs without loading PyTorch; ``workers.zoo`` builds these models."""

from __future__ import annotations

MODEL_TYPES = ("logreg", "mlp", "cnn")
OPTIMIZERS = ("adam", "sgd")
