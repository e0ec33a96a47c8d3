"""One signed POST of a delivery's body, to an address checked just before
(``addresses.addresses_check``), with bounded time and a bounded read of the answer."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import urllib3
from celery.exceptions import SoftTimeLimitExceeded
from urllib3.exceptions import HTTPError as Urllib3Error

from jobs.webhooks.addresses import Target

EXCERPT_BYTES = 1024  # of the response body, kept with the attempt
USER_AGENT = "TensorFleet-Hookshot/1"


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body keyed with the secret>`` (GitHub's scheme)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Answer:
    """What one POST gave: a status (and the body's first bytes), or the error that kept it."""

    status: int | None
    excerpt: str
    error: str
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """Worth another try: no answer (connection refused, reset, timed out), a 5xx, or
        a 429. Any other 4xx or a redirect would answer the same again."""
        return self.status is None or self.status >= 500 or self.status == 429


def _pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    limit = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":  # the certificate is checked against the name, not the address
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=limit,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(address, target.port, timeout=limit, retries=False, maxsize=1)


def _read_excerpt(response, deadline: float) -> str:
    """Up to EXCERPT_BYTES of the body, stopping at the deadline (a slow trickle does not hold the task)."""
    data = b""
    while len(data) < EXCERPT_BYTES and time.monotonic() < deadline:
        chunk = response.read1(EXCERPT_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", errors="replace")


def post(*, target: Target, address: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``target`` at ``address`` (Host header and TLS name from the URL);
    redirects are not followed (their target was never checked)."""
    host = target.host if ":" not in target.host else f"[{target.host}]"
    default_port = 443 if target.scheme == "https" else 80
    headers = {
        "Host": host if target.port == default_port else f"{host}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    started = time.monotonic()
    pool = _pool(target, address, timeout)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers=headers,
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = _read_excerpt(response, started + 2 * timeout)
        finally:
            response.release_conn()
        return Answer(response.status, excerpt, "", (time.monotonic() - started) * 1000)
    except (Urllib3Error, OSError, SoftTimeLimitExceeded) as exc:
        return Answer(None, "", f"{type(exc).__name__}: {exc}"[:500], (time.monotonic() - started) * 1000)
    finally:
        pool.close()
