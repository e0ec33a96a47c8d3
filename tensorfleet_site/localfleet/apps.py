from django.apps import AppConfig


class LocalFleetConfig(AppConfig):
    """``manage.py runfleet``: the whole platform on one machine (API, worker processes,
    control worker with beat, Flower, an embedded Redis when none is running)."""

    name = "tensorfleet_site.localfleet"
    label = "localfleet"
    verbose_name = "Local fleet"
