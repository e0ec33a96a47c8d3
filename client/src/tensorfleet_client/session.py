"""The HTTP session under ``Client``: base URL, token, bounded timeouts, a few retries of
reads that met a dropped connection or a 502/503/504, and errors as exceptions."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx

from tensorfleet_client.errors import TensorFleetError, TransportError, error_for

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 30.0  # seconds: to connect, and between two reads or writes of a body
RETRY_STATUSES = (502, 503, 504)
IDEMPOTENT = ("GET", "HEAD", "OPTIONS")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tensorfleet-client")
    except Exception:  # not installed (run from a source tree)
        return "dev"


def base_url(url: str | None) -> str:
    """The server's root from what a user types: with or without ``/api/v1``, a trailing
    slash or a scheme (``localhost:8000`` is ``http://localhost:8000``)."""
    url = (url or os.environ.get("TENSORFLEET_URL") or "").strip()
    if not url:
        raise TensorFleetError("no server URL: pass url= (--url) or set TENSORFLEET_URL, e.g. http://localhost:8000")
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    return url


class Session:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ):
        self.url = base_url(url)
        token = (token or os.environ.get("TENSORFLEET_TOKEN") or "").strip()
        if not token:
            raise TensorFleetError(
                "no API token: pass token= (--token) or set TENSORFLEET_TOKEN "
                "(make one with `manage.py create_token USER` on the server)"
            )
        self.retries = max(0, retries)
        self.http = httpx.Client(
            base_url=self.url + API_PREFIX,
            headers={
                "Authorization": f"Token {token}",
                "Accept": "application/json",
                "User-Agent": f"tensorfleet-client/{_version()}",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One answer under 400, or the exception for it. A read is retried (backoff 0.5,
        1, 2 s) when the connection fails or the answer is 502, 503 or 504."""
        attempts = 1 + (self.retries if method in IDEMPOTENT else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.http.request(method, path, **kw)
            except httpx.TimeoutException as exc:
                if last:
                    raise TransportError(f"{self.url} did not answer {method} {path} in time ({exc})") from None
            except httpx.TransportError as exc:
                if last:
                    raise TransportError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
            else:
                if response.status_code < 400:
                    return response
                if last or response.status_code not in RETRY_STATUSES:
                    raise error_for(response)
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_params(params)).json()

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        response = self.request("POST", path, json=json, **kw)
        return response.json() if response.content else None

    def paginate(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a list, page after page (DRF's ``next`` links)."""
        page: Any = self.get(path, **params)
        while True:
            if isinstance(page, list):  # an unpaginated list
                yield from page
                return
            yield from page.get("results", [])
            following = page.get("next")
            if not following:
                return
            page = self.request("GET", following).json()

    def stream(self, path: str):
        """A streamed GET (close it, or use it in ``with``); errors raised before any byte."""
        request = self.http.build_request("GET", path)
        try:
            response = self.http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise TransportError(f"{self.url} did not answer GET {path} in time ({exc})") from None
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            response.read()
            response.close()
            raise error_for(response)
        return response


def _params(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without the ones left unset; booleans as the API spells them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out
