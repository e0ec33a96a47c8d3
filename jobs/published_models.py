"""Reads over what the workers published (``jobs.models.ModelOffer``): which models the
workers of each queue can build, with the schema of their arguments and the input they
take, and the rules a job spec's ``model_type`` and ``model_args`` follow.

The rules, for a job on queue q:

* a model some worker on q published: its ``model_args`` are checked against the
  builder's signature (``jobs.model_schemas``);
* a model the workers on q did not publish but others did: refused, naming what q has;
* a model no worker published: refused, "unknown model";
* a queue nobody has published for yet (no worker has started on it): accepted, its
  arguments checked against the model's schema from another queue when there is one.
  When no worker has published anything at all (a fleet starting), the project's own
  models (``jobs.catalog.MODEL_TYPES``) are accepted and their arguments left to the
  worker that builds them, which checks them again (``workers.plugins``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.catalog import BUILTIN_INPUT_KINDS, MODEL_TYPES
from jobs.model_schemas import model_args_check
from jobs.models import ModelOffer


@dataclass(frozen=True)
class Offer:
    name: str
    arguments: dict
    input_kind: str
    description: str
    source: str


@dataclass(frozen=True)
class Published:
    """Every queue's models (the latest offer of each), read in one query."""

    by_queue: dict[str, dict[str, Offer]] = field(default_factory=dict)
    latest: dict[str, Offer] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.latest

    def offer(self, name: str, queue: str | None = None) -> Offer | None:
        """The model as the queue's workers published it, else as any worker did."""
        return self.by_queue.get(queue or "", {}).get(name) or self.latest.get(name)

    def input_kind(self, name: str) -> str:
        offer = self.latest.get(name)
        return offer.input_kind if offer else BUILTIN_INPUT_KINDS.get(name, ModelOffer.Input.ANY)


def published() -> Published:
    by_queue: dict[str, dict[str, Offer]] = {}
    latest: dict[str, Offer] = {}
    rows = ModelOffer.objects.order_by("published_at", "id").values_list(
        "queue", "name", "arguments", "input_kind", "description", "source"
    )
    for queue, name, arguments, kind, description, source in rows:  # later rows win
        offer = Offer(name, arguments or {}, kind, description, source)
        by_queue.setdefault(queue, {})[name] = offer
        latest[name] = offer
    return Published(by_queue=by_queue, latest=latest)


def model_names() -> list[str]:
    """Every published model's name, sorted."""
    return sorted(set(ModelOffer.objects.values_list("name", flat=True)))


def architectures() -> list[dict]:
    """GET /api/v1/architectures: each model with its arguments, its input and the queues
    whose workers can build it."""
    catalog = published()
    return [
        {
            "name": name,
            "input_kind": offer.input_kind,
            "arguments": offer.arguments,
            "description": offer.description,
            "source": offer.source,
            "queues": sorted(q for q, models in catalog.by_queue.items() if name in models),
        }
        for name, offer in sorted(catalog.latest.items())
    ]


def model_spec_errors(*, model_type: str, model_args: dict, queue: str, catalog: Published) -> tuple[dict, dict]:
    """(model_args as the builder gets them, errors by field) for a job naming ``model_type``
    with ``model_args`` on ``queue``; the rules are in the module's docstring."""
    if catalog.empty:
        if model_type in MODEL_TYPES:
            return model_args, {}
        known = ", ".join(MODEL_TYPES)
        return model_args, {
            "model_type": [f"Unknown model {model_type!r}: no worker has published its models yet. Built in: {known}."]
        }
    on_queue = catalog.by_queue.get(queue, {})
    offer = catalog.offer(model_type, queue)
    if offer is None:
        known = ", ".join(sorted(catalog.latest))
        return model_args, {"model_type": [f"Unknown model {model_type!r}: no worker publishes it. Known: {known}."]}
    if on_queue and model_type not in on_queue:
        elsewhere = sorted(q for q, models in catalog.by_queue.items() if model_type in models)
        return model_args, {
            "model_type": [
                f"No worker on queue {queue!r} can build {model_type!r} (workers on {', '.join(elsewhere)} can). "
                f"Queue {queue!r} has: {', '.join(sorted(on_queue))}."
            ]
        }
    cleaned, errors = model_args_check(offer.arguments, model_args, model=model_type)
    return cleaned, ({"model_args": errors} if errors else {})


def input_kind_error(*, model_type: str, is_image: bool, dataset: str, catalog: Published) -> str | None:
    """Why ``model_type`` cannot take the dataset's input (images or tabular), else None."""
    kind = catalog.input_kind(model_type)
    if kind == ModelOffer.Input.IMAGES and not is_image:
        return f"{model_type} needs an image dataset; '{dataset}' is tabular (use a model that takes tabular input, e.g. mlp or logreg)."
    if kind == ModelOffer.Input.TABULAR and is_image:
        return f"{model_type} needs a tabular dataset; '{dataset}' holds images."
    return None
