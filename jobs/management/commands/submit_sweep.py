"""Submit a hyperparameter sweep from a JSON or YAML file, as POST /api/v1/sweeps does;
--watch follows its trials to the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand, first_error_line, get_owner
from jobs.services import sweeps
from jobs.sweep_serializers import SweepCreateSerializer
from jobs.watch import exit_code_for, stop_watching, sweep_summary, watch_sweep


def load_spec(path: str) -> dict:
    """The file's object: JSON, or YAML (by a .yaml/.yml suffix, or when it is not JSON)."""
    import yaml  # PyYAML comes with drf-spectacular

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if Path(path).suffix.lower() in (".yaml", ".yml"):
            spec = yaml.safe_load(text)
        else:
            try:
                spec = json.loads(text)
            except json.JSONDecodeError:
                spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CommandError(f"{path} is neither JSON nor YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, dict):
        raise CommandError(f"{path} must hold one object (the sweep spec), not {type(spec).__name__}")
    return spec


class Command(JobCommand):
    help = (
        "Submit a hyperparameter sweep from a JSON or YAML file (the body of POST /api/v1/sweeps; '-' reads "
        "stdin). --watch prints the trials as they go and exits 0 only if the sweep succeeds."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the sweep spec: .json, .yaml/.yml, or '-' for stdin")
        parser.add_argument("--owner", help="username (default: the first superuser)")
        parser.add_argument("--watch", action="store_true", help="follow the trials; exit 0 only if the sweep succeeds")
        parser.add_argument("--json", action="store_true", help="print the sweep as JSON")

    def handle(self, *args, **opts):
        data = load_spec(opts["file"])
        spec = SweepCreateSerializer(data=data, context={"owner": get_owner(opts["owner"])})
        if not spec.is_valid():
            raise CommandError(first_error_line(_flatten(spec.errors)))
        sweep = sweeps.sweep_create(owner=get_owner(opts["owner"]), spec=spec.validated_data)
        if opts["json"]:
            from jobs.sweep_serializers import SweepDetailSerializer

            self.stdout.write(json.dumps(SweepDetailSerializer(sweep, context={"request": None}).data, default=str))
        else:
            self.stdout.write(
                f"submitted sweep {sweep.id}: {sweep.max_trials} trials, {sweep.max_concurrent} at a time, "
                f"{sweep.search} search on {sweep.metric} ({sweep.mode})"
            )
        if not opts["watch"]:
            return
        try:
            sweep = watch_sweep(sweep.id, out=self.stdout)
        except KeyboardInterrupt:  # Ctrl-C stops the watching, not the sweep
            stop_watching(sweep, out=self.stderr)
        for line in sweep_summary(sweep):
            self.stdout.write(line)
        code = exit_code_for(sweep)
        if code == 0:
            self.stdout.write(self.style.SUCCESS(f"sweep {sweep.id} succeeded"))
            return
        raise CommandError(
            f"sweep {sweep.id} {sweep.status}" + (f": {sweep.error}" if sweep.error else ""), returncode=code
        )


def _flatten(errors: dict, prefix: str = "") -> dict:
    """{"space": {"learning_rate": [...]}} -> {"space.learning_rate": [...]} for one line per field."""
    flat = {}
    for field, messages in errors.items():
        if isinstance(messages, dict):
            flat.update(_flatten(messages, f"{prefix}{field}."))
        else:
            flat[f"{prefix}{field}"] = messages
    return flat
