"""TensorFleet's Python client: the REST API over HTTP, with neither Django nor torch.

    from tensorfleet_client import Client

    tf = Client("http://localhost:8000", token="...")   # or TENSORFLEET_URL / TENSORFLEET_TOKEN
    job = tf.wait(tf.submit_job(model_type="cnn", dataset="digits", num_workers=2, epochs=5))
    print(tf.metrics(job)["val_accuracy"], tf.download_checkpoint(job, which="best"))

The ``tensorfleet`` command does the same from a shell (``tensorfleet --help``).
"""

from tensorfleet_client.client import Client
from tensorfleet_client.errors import (
    AuthenticationError,
    ChecksumMismatch,
    ClientError,
    Conflict,
    FeatureUnavailable,
    JobFailed,
    NotFound,
    QuotaExceeded,
    ServerError,
    TensorFleetError,
    TransportError,
)

__all__ = [
    "AuthenticationError",
    "ChecksumMismatch",
    "Client",
    "ClientError",
    "Conflict",
    "FeatureUnavailable",
    "JobFailed",
    "NotFound",
    "QuotaExceeded",
    "ServerError",
    "TensorFleetError",
    "TransportError",
]
