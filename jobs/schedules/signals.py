"""``run_finished(run_id)``: a scheduled run ended (judged, refused or skipped), sent once
that committed; the webhooks send schedule.run_finished."""

from __future__ import annotations

from django.dispatch import Signal

run_finished = Signal()
