"""The model registry: named models, immutable versions made from a job's checkpoint
(with their lineage), and aliases that point at one version (``champion``, ``staging``).

A nested app (label ``registry``): it imports jobs and storage_app; the core of jobs
never imports it (tests/test_registry.py checks the direction).
"""
