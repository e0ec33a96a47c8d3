"""Which storage holds what: checkpoints in ``default``, datasets in ``datasets``
(another bucket when TENSORFLEET_DATASETS_BUCKET says so)."""

from __future__ import annotations

from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.utils.functional import LazyObject, empty


class _DatasetsStorage(LazyObject):
    """``storages["datasets"]``, looked up on first use (as Django's default_storage is)."""

    def _setup(self):
        self._wrapped = storages["datasets"]


_datasets = _DatasetsStorage()


def datasets_storage():
    return _datasets


def _reset(*, setting, **kwargs):
    if setting == "STORAGES":  # tests and reconfiguration swap the storage
        _datasets._wrapped = empty


setting_changed.connect(_reset)
