"""One evaluation pass over the validation split: loss, accuracy, and what users look
for besides (per-class accuracy, the confusion matrix, top-5 accuracy).

Pure: a model and tensors in, plain numbers out, no Django. Computed from the same
logits in the same pass, so the extra metrics cost a few integer additions per batch.
The evaluation runs in float32 whatever precision the job trained with: the numbers
are those of the checkpoint as it is stored and as a user loads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

TOP5_ABOVE_CLASSES = 10  # top-5 accuracy is reported when there are more classes than this
# A matrix of n x n counts is stored per evaluated epoch: 100 classes make 10,000 cells.
# Beyond that only per-class accuracy is kept (datasets may have up to 10,000 classes).
MAX_CONFUSION_CLASSES = 100


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    top5_accuracy: float | None
    per_class_accuracy: list[float | None]  # by class index; None for a class absent from the split
    confusion_matrix: list[list[int]] | None  # rows: true class, columns: predicted class


def evaluate_model(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, num_classes: int, batch_size: int = 8192
) -> Evaluation:
    """Evaluate ``model`` on (x, y) in one pass; ``x`` and ``y`` live on the model's device."""
    model.eval()
    loss_sum, correct, top5 = 0.0, 0, 0
    with_matrix = num_classes <= MAX_CONFUSION_CLASSES
    cells = num_classes * num_classes if with_matrix else num_classes
    counts = torch.zeros(cells, dtype=torch.long, device=y.device)
    support = torch.zeros(num_classes, dtype=torch.long, device=y.device)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
            predicted = logits.argmax(1)
            hit = predicted == yb
            correct += int(hit.sum().item())
            if num_classes > TOP5_ABOVE_CLASSES:
                top5 += int((logits.topk(5, dim=1).indices == yb[:, None]).any(1).sum().item())
            support += torch.bincount(yb, minlength=num_classes)
            if with_matrix:
                counts += torch.bincount(yb * num_classes + predicted, minlength=cells)
            else:  # correct predictions per true class only
                counts += torch.bincount(yb[hit], minlength=num_classes)
    n = max(len(x), 1)
    totals = support.tolist()
    if with_matrix:
        matrix = counts.view(num_classes, num_classes).tolist()
        hits = [matrix[c][c] for c in range(num_classes)]
    else:
        matrix, hits = None, counts.tolist()
    return Evaluation(
        loss=loss_sum / n,
        accuracy=correct / n,
        top5_accuracy=top5 / n if num_classes > TOP5_ABOVE_CLASSES else None,
        per_class_accuracy=[h / t if t else None for h, t in zip(hits, totals, strict=True)],
        confusion_matrix=matrix,
    )
