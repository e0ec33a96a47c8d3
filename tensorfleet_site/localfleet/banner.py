"""What ``runfleet`` prints once the fleet is up: the dashboard first, then the API, the
admin login (its secrets shown this once), Flower, health, metrics, workers and logs."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def base_url(opts) -> str:
    return f"http://{opts['host']}:{opts['port']}"


def dashboard_url(opts) -> str:
    return f"{base_url(opts)}/dashboard/"


def flower_url(opts) -> str:
    return f"http://{opts['host']}:{opts['flower_port']}/"


def banner_lines(
    opts,
    username: str,
    password: str | None,
    token: str | None,
    state: Path,
    flower_login: str,
    metrics_ports: list[int],
) -> list[str]:
    base = base_url(opts)
    if password:
        login = f"user {username}, password {password}, shown this once"
    else:
        login = f"user {username}; a new password: manage.py changepassword {username}"
    lines = [
        "",
        "TensorFleet is running.",
        f"  Dashboard    {dashboard_url(opts)}   (log in as {username})",
        f"  API          {base}/api/v1/jobs",
        f"  API docs     {base}/api/docs/",
        f"  Admin        {base}/admin/   ({login})",
    ]
    if not opts["no_flower"]:
        flower = flower_url(opts).rstrip("/")
        lines.append(f"  Flower       {flower}/   ({flower_login}); its metrics at {flower}/metrics")
    guarded = "; Authorization: Bearer $METRICS_TOKEN" if settings.METRICS_TOKEN else ""
    lines += [
        f"  Health       {base}/api/v1/health   readiness {base}/api/v1/ready",
        f"  Overview     {base}/api/v1/overview   (with your API token)",
        f"  Metrics      {base}/metrics   (Prometheus{guarded})",
    ]
    if metrics_ports:
        names = [f"worker-{i}" for i in range(1, opts["processes"] + 1)] + ["control"]
        exporters = ", ".join(
            f"{name} http://{opts['host']}:{port}/metrics" for name, port in zip(names, metrics_ports, strict=True)
        )
        lines.append(f"  Exporters    {exporters}")
    lines += [
        f"  Workers      {opts['processes']} on queue(s) {opts['queues']}, plus the reconciler (beat + control worker)",
        f"  Logs         {state / 'logs'}   (one file per process; job events follow here)",
        f"  Token        {token}   (shown this once; only its digest is kept)"
        if token
        else f"  Token        shown on the first run; a new one: manage.py create_token {username}",
        f'  Try          curl -H "Authorization: Token {token or "$TOKEN"}" {base}/api/v1/jobs',
        "Press Ctrl-C to stop everything.",
        "",
    ]
    return lines
