"""The metrics of one evaluation pass (workers/evaluation.py) and how the API and the
dashboard show them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jobs.models import EpochMetric
from tests.factories import JobFactory
from workers.evaluation import MAX_CONFUSION_CLASSES, evaluate_model
from workers.training import evaluate


def logits_for(predicted: list[int], classes: int) -> torch.Tensor:
    """Logits whose arg-max is ``predicted`` (the model is the identity)."""
    out = torch.zeros(len(predicted), classes)
    out[torch.arange(len(predicted)), torch.tensor(predicted)] = 5.0
    return out


def test_confusion_matrix_rows_are_true_classes_and_columns_predicted():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    x = logits_for([0, 0, 1, 1, 2, 2, 2, 0], 4)  # class 3 never occurs
    result = evaluate_model(nn.Identity(), x, y, num_classes=4, batch_size=3)
    assert result.confusion_matrix == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert result.per_class_accuracy == [pytest.approx(2 / 3), 0.5, pytest.approx(2 / 3), None]
    assert result.accuracy == 5 / 8
    assert result.loss == pytest.approx(F.cross_entropy(x, y).item())
    assert result.top5_accuracy is None  # 10 classes or fewer


def test_loss_and_accuracy_agree_with_the_plain_evaluation():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, y = torch.randn(100, 6), torch.randint(0, 3, (100,))
    result = evaluate_model(model, x, y, num_classes=3, batch_size=7)
    loss, accuracy = evaluate(model, x, y, batch_size=7)
    assert (result.loss, result.accuracy) == (loss, accuracy)
    assert sum(map(sum, result.confusion_matrix)) == 100


def test_top5_accuracy_above_ten_classes():
    classes = 12
    y = torch.tensor([0, 1, 2, 3])
    x = torch.zeros(4, classes)
    x[:, 6:11] = torch.arange(5, 0, -1, dtype=torch.float)  # top 5: classes 6..10
    x[0, 0] = 2.5  # class 0 in its top 5 (pushing class 10 out), not first
    x[1, 1] = 9.0  # class 1 first
    result = evaluate_model(nn.Identity(), x, y, num_classes=classes)
    assert result.accuracy == 0.25 and result.top5_accuracy == 0.5


def test_many_classes_keep_per_class_accuracy_without_a_matrix():
    classes = MAX_CONFUSION_CLASSES + 1
    y = torch.arange(classes).repeat(2)
    predicted = y.clone()
    predicted[:classes] = (y[:classes] + 1) % classes  # the first of each class is wrong
    result = evaluate_model(nn.Identity(), logits_for(predicted.tolist(), classes), y, num_classes=classes)
    assert result.confusion_matrix is None
    assert result.per_class_accuracy == [0.5] * classes and result.accuracy == 0.5


@pytest.mark.django_db
def test_the_metrics_endpoint_names_the_classes(api, user):
    job = JobFactory(owner=user, num_classes=3, class_names=["circle", "square", "triangle"])
    EpochMetric.objects.create(
        job=job, epoch=1, train_loss=1.0, samples=10, samples_per_s=1.0, duration_s=1.0
    )  # an epoch eval_every skipped
    EpochMetric.objects.create(
        job=job,
        epoch=2,
        train_loss=0.5,
        val_loss=0.4,
        val_accuracy=0.75,
        per_class_accuracy=[1.0, 0.5, None],
        confusion_matrix=[[2, 0, 0], [1, 1, 0], [0, 0, 0]],
        samples=10,
        samples_per_s=1.0,
        duration_s=1.0,
    )
    body = api.get(f"/api/v1/jobs/{job.id}/metrics").json()
    assert body[0]["val_accuracy"] is None and body[0]["per_class_accuracy"] is None
    assert body[0]["confusion_matrix"] is None
    assert body[1]["per_class_accuracy"] == {"circle": 1.0, "square": 0.5, "triangle": None}
    assert body[1]["confusion_matrix"] == {
        "classes": ["circle", "square", "triangle"],
        "rows": [[2, 0, 0], [1, 1, 0], [0, 0, 0]],
    }
    assert body[1]["top5_accuracy"] is None


@pytest.mark.django_db
def test_without_names_the_classes_are_their_indices(api, user):
    job = JobFactory(owner=user, num_classes=2)
    EpochMetric.objects.create(
        job=job,
        epoch=1,
        train_loss=0.5,
        val_loss=0.4,
        val_accuracy=0.5,
        per_class_accuracy=[1.0, 0.0],
        confusion_matrix=[[1, 0], [1, 0]],
        samples=2,
        samples_per_s=1.0,
        duration_s=1.0,
    )
    body = api.get(f"/api/v1/jobs/{job.id}/metrics").json()
    assert body[0]["per_class_accuracy"] == {"0": 1.0, "1": 0.0}


@pytest.mark.django_db
def test_the_dashboard_shows_the_last_evaluated_epoch_per_class(client, user):
    job = JobFactory(owner=user, num_classes=3, class_names=["circle", "square", "triangle"], epochs=3)
    for epoch, matrix in ((1, [[1, 1, 0], [0, 2, 0], [0, 0, 2]]), (2, [[2, 0, 0], [0, 1, 1], [0, 0, 2]])):
        EpochMetric.objects.create(
            job=job,
            epoch=epoch,
            train_loss=0.5,
            val_loss=0.4,
            val_accuracy=sum(matrix[i][i] for i in range(3)) / 6,
            per_class_accuracy=[row[i] / sum(row) for i, row in enumerate(matrix)],
            confusion_matrix=matrix,
            samples=6,
            samples_per_s=1.0,
            duration_s=1.0,
        )
    EpochMetric.objects.create(job=job, epoch=3, train_loss=0.3, samples=6, samples_per_s=1.0, duration_s=1.0)
    user.save()  # UserFactory sets the password without saving it; the session checks it
    client.force_login(user)
    page = client.get(f"/dashboard/jobs/{job.id}/").content.decode()
    section = page[page.index('id="class-metrics"') :]
    assert "Per class, epoch 2" in section
    assert "<td>square</td><td>50.0 %</td><td>2</td>" in section  # formatted as the dashboard formats accuracy
    assert "<th>circle</th><td><strong>2</strong></td><td>0</td><td>0</td>" in section
    assert "true \\ predicted" in section
    # The metrics table shows a skipped epoch's validation metrics as a dash.
    assert '<td>3</td><td>0.3000</td><td>–</td><td title="">–</td>' in page
