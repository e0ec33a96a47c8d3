"""The nested apps under jobs/ (registry, webhooks, schedules) import jobs; the core of
jobs never imports them (no cycle, and a job's life does not depend on them)."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
NESTED = ("jobs.registry", "jobs.webhooks", "jobs.schedules")
# Leaf entry points that may wire a nested app in: commands nothing imports.
ALLOWED_IMPORTERS = ("jobs.management.commands.submit_job",)


def test_core_jobs_modules_never_import_the_nested_apps():
    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph("jobs", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))
    nested = [n for n in NESTED if n in graph.modules]
    assert "jobs.registry" in nested
    offending = []
    for module in sorted(graph.modules):
        if module.startswith(NESTED) or module in ALLOWED_IMPORTERS:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith(NESTED):
                offending.append(f"{module} -> {imported}")
    assert not offending, offending
