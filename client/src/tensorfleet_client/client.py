"""``Client``: the TensorFleet REST API as Python calls that take and return plain
dicts and lists. Jobs and sweeps are named by their id, a unique prefix of 8 or more
characters, or the dict the API returned for them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union
from urllib.parse import quote

import httpx
from tqdm.auto import tqdm

from tensorfleet_client.errors import FeatureUnavailable, JobFailed, NotFound
from tensorfleet_client.session import DEFAULT_TIMEOUT, Session
from tensorfleet_client.transfer import ProgressFile, Which, pick_checkpoint, save_verified

Ref = Union[str, dict[str, Any]]
FINAL = ("succeeded", "failed", "cancelled")


def ref(obj: Ref) -> str:
    """The id in ``obj``: a string as given, or a job's, sweep's or trial's dict."""
    if isinstance(obj, dict):
        for key in ("id", "job_id"):
            if obj.get(key):
                return str(obj[key])
        raise ValueError("this dict has no 'id': pass a job or sweep as the API returned it, or its id")
    text = str(obj).strip()
    if not text:
        raise ValueError("an empty id")
    return quote(text, safe="")


class Client:
    """A TensorFleet server, as one user (the token's).

    >>> tf = Client("http://localhost:8000", token)          # or TENSORFLEET_URL / _TOKEN
    >>> job = tf.wait(tf.submit_job(model_type="cnn", dataset="digits", epochs=5))
    >>> tf.metrics(job)["val_accuracy"], tf.download_checkpoint(job, which="best")
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = Session(url, token, timeout=timeout, retries=retries, transport=transport, verify=verify)
        self.url = self._http.url

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- jobs
    def submit_job(self, spec: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Submit a job: the spec as POST /api/v1/jobs takes it, as a dict and/or keywords.
        The answer's ``warnings`` say what may keep it waiting (no worker on its queue)."""
        return self._http.post("/jobs/", json={**(spec or {}), **fields})

    def job(self, job: Ref) -> dict[str, Any]:
        return self._http.get(f"/jobs/{ref(job)}/")

    def iter_jobs(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Your jobs, newest first, fetched page by page."""
        return self._http.paginate("/jobs/", {"page_size": page_size, **filters})

    def jobs(self, *, status: str | None = None, limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Your jobs, newest first, every page followed (up to ``limit``). ``filters`` are
        the list's query parameters (``sweep``, and whatever the server filters by); one
        it does not know is a ClientError naming the ones it does."""
        out = []
        for job in self.iter_jobs(page_size=min(limit or 100, 100), status=status, **filters):
            out.append(job)
            if limit is not None and len(out) >= limit:
                break
        return out

    def cancel(self, job: Ref) -> dict[str, Any]:
        """Stop a queued or running job (no new epoch starts). A Conflict if it has ended."""
        return self._http.post(f"/jobs/{ref(job)}/cancel/")

    def resume(self, job: Ref) -> dict[str, Any]:
        """Continue a cancelled or failed job from its last completed epoch."""
        return self._http.post(f"/jobs/{ref(job)}/resume/")

    def delete(self, job: Ref) -> None:
        """Delete an ended job and everything it stored."""
        self._http.request("DELETE", f"/jobs/{ref(job)}/")

    def tasks(self, job: Ref) -> list[dict[str, Any]]:
        return list(self._http.paginate(f"/jobs/{ref(job)}/tasks/", {"page_size": 1000}))

    def metrics(self, job: Ref) -> dict[str, list[Any]]:
        """One list per metric, one entry per recorded epoch:
        ``{"epoch": [1, 2], "train_loss": [...], "val_accuracy": [...], ...}``."""
        rows = self._http.get(f"/jobs/{ref(job)}/metrics/")
        columns: dict[str, list[Any]] = {}
        for row in rows:
            for key in row:
                columns.setdefault(key, [])
        for row in rows:
            for key, values in columns.items():
                values.append(row.get(key))
        return columns

    def checkpoints(self, job: Ref) -> list[dict[str, Any]]:
        return self._http.get(f"/jobs/{ref(job)}/checkpoints/")

    def download_checkpoint(
        self,
        job: Ref,
        which: Which = "final",
        path: str | os.PathLike | None = None,
        *,
        progress: bool = False,
    ) -> Path:
        """Download a checkpoint (safetensors) and check its sha256 against the server's
        ``X-Checksum-SHA256``; a mismatch keeps nothing and raises ChecksumMismatch.
        ``which``: "final", "best", "latest" or an epoch number. ``path``: a file, or a
        folder for the server's file name (default: the current folder)."""
        info = self.job(job)
        checkpoint = pick_checkpoint(
            self.checkpoints(info), which, job_label=info["id"][:8], status=info.get("status", "?")
        )
        response = self._http.stream(f"/jobs/{info['id']}/checkpoints/{checkpoint['id']}/download/")
        fallback = f"job-{info['id'][:8]}-{checkpoint.get('kind', 'epoch')}-{checkpoint['epoch']}.safetensors"
        return save_verified(
            response, path, expected_sha256=checkpoint.get("sha256") or "", fallback_name=fallback, progress=progress
        )

    def wait(
        self,
        job: Ref,
        *,
        progress: bool = True,
        poll: float = 1.0,
        timeout: float | None = None,
        check: bool = False,
        file: Any = None,
    ) -> dict[str, Any]:
        """Poll until the job ends and return it, drawing a tqdm bar of epochs with the
        loss and accuracy. ``timeout``: seconds, then TimeoutError (the job goes on).
        ``check``: raise JobFailed unless it succeeded. Ctrl-C stops waiting, not the job."""
        info = self.job(job)
        deadline = time.monotonic() + timeout if timeout else None
        label = f"job {info['id'][:8]}"
        done = info.get("completed_epochs") or 0  # a job watched again starts its bar where it stands
        bar_args = {"unit": "epoch", "desc": label, "disable": not progress, "file": file, "initial": done}
        with tqdm(total=info.get("epochs") or None, **bar_args) as bar:
            while True:
                bar.update(max(0, (info.get("completed_epochs") or 0) - bar.n))
                bar.set_postfix(_job_postfix(info), refresh=True)
                if info["status"] in FINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{label} is still {info['status']} after {timeout:g}s (it goes on)")
                time.sleep(poll)
                info = self.job(info["id"])
        if check and info["status"] != "succeeded":
            raise JobFailed(_ended_line(label, info), info)
        return info

    # --- sweeps
    def submit_sweep(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit a sweep: ``{"base": {...}, "space": {...}, "trials": n, ...}`` as POST /api/v1/sweeps takes it."""
        return self._http.post("/sweeps/", json=spec)

    def sweep(self, sweep: Ref) -> dict[str, Any]:
        return self._http.get(f"/sweeps/{ref(sweep)}/")

    def sweeps(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self._http.paginate("/sweeps/", {"page_size": 100, **filters}))

    def trials(self, sweep: Ref) -> list[dict[str, Any]]:
        return list(self._http.paginate(f"/sweeps/{ref(sweep)}/trials/", {"page_size": 1000}))

    def cancel_sweep(self, sweep: Ref) -> dict[str, Any]:
        return self._http.post(f"/sweeps/{ref(sweep)}/cancel/")

    def wait_sweep(
        self,
        sweep: Ref,
        *,
        progress: bool = True,
        poll: float = 2.0,
        timeout: float | None = None,
        check: bool = False,
        file: Any = None,
    ) -> dict[str, Any]:
        """Poll until the sweep ends and return it; the bar counts ended trials and shows the best metric."""
        info = self.sweep(sweep)
        deadline = time.monotonic() + timeout if timeout else None
        label = f"sweep {info['id'][:8]}"
        with tqdm(total=info.get("trials") or None, unit="trial", desc=label, disable=not progress, file=file) as bar:
            while True:
                counts = info.get("counts") or {}
                ended = sum(counts.get(s, 0) for s in FINAL)
                bar.update(max(0, ended - bar.n))
                best = info.get("best") or {}
                postfix = {"status": info["status"], "running": counts.get("running", 0)}
                if best.get("metric") is not None:
                    postfix[f"best {info.get('metric', 'metric')}"] = f"{best['metric']:.4f}"
                bar.set_postfix(postfix, refresh=True)
                if info["status"] in FINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{label} is still {info['status']} after {timeout:g}s (it goes on)")
                time.sleep(poll)
                info = self.sweep(info["id"])
        if check and info["status"] != "succeeded":
            raise JobFailed(_ended_line(label, info), info)
        return info

    # --- datasets
    def upload_dataset(
        self,
        path: str | os.PathLike,
        name: str | None = None,
        *,
        label_column: str | None = None,
        format: str | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Upload a dataset file (CSV, NPZ, a zip of image folders, ...), streamed from
        disk. Jobs then name it in ``dataset`` by its name or id."""
        source = Path(path).expanduser()
        if not source.is_file():
            raise FileNotFoundError(f"no file {source}")
        data = {k: v for k, v in (("name", name), ("label_column", label_column), ("format", format)) if v}
        size = source.stat().st_size
        with (
            open(source, "rb") as fh,
            tqdm(total=size, unit="B", unit_scale=True, desc=source.name, disable=not progress, leave=False) as bar,
        ):
            files = {"file": (source.name, ProgressFile(fh, bar), "application/octet-stream")}
            response = self._http.request("POST", "/datasets/", data=data, files=files)
        return response.json()

    def datasets(self) -> list[dict[str, Any]]:
        return list(self._http.paginate("/datasets/", {"page_size": 100}))

    def dataset(self, dataset: Ref) -> dict[str, Any]:
        return self._http.get(f"/datasets/{ref(dataset)}/")

    def delete_dataset(self, dataset: Ref) -> None:
        self._http.request("DELETE", f"/datasets/{ref(dataset)}/")

    # --- model registry (a server with the registry: POST /api/v1/models and .../versions)
    def create_model(self, name: str, description: str = "") -> dict[str, Any]:
        return self._registry("POST", "/models/", json={"name": name, "description": description})

    def model(self, name: str) -> dict[str, Any]:
        """A registered model with its versions and aliases."""
        return self._registry("GET", f"/models/{quote(name, safe='')}/")

    def models(self) -> list[dict[str, Any]]:
        page = self._registry("GET", "/models/", params={"page_size": 1000})
        return page["results"] if isinstance(page, dict) else page

    def register_model(
        self,
        name: str,
        job: Ref,
        which: Which = "best",
        *,
        description: str = "",
        alias: str | None = None,
    ) -> dict[str, Any]:
        """Make the next version of model ``name`` (created if you have none by that name)
        from one of the job's checkpoints: "best", "final" or an epoch number; then point
        ``alias`` at it when given. Returns the version. A server without the model
        registry raises FeatureUnavailable."""
        try:
            self.model(name)
        except NotFound:
            self.create_model(name, description)
        body: dict[str, Any] = {"job": self.job(job)["id"], "description": description}
        if isinstance(which, int) or str(which).isdigit():
            body.update(checkpoint="epoch", epoch=int(which))
        else:
            body["checkpoint"] = which
        version = self._registry("POST", f"/models/{quote(name, safe='')}/versions/", json=body)
        if alias:
            self.set_alias(name, alias, version["version"])
            version["aliases"] = sorted({*version.get("aliases", []), alias})
        return version

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point ``alias`` (e.g. "champion") at version ``version`` of model ``name``."""
        path = f"/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}/"
        return self._registry("PUT", path, json={"version": version})

    def download_model(
        self,
        name: str,
        version: int | None = None,
        *,
        alias: str | None = None,
        path: str | os.PathLike | None = None,
    ) -> Path:
        """Download a registered model's file (its latest version, version ``version``, or
        the one ``alias`` points at), its sha256 checked."""
        if version is not None and alias is not None:
            raise ValueError("give version or alias, not both")
        quoted = quote(name, safe="")
        if alias is not None:
            where = f"/models/{quoted}/aliases/{quote(alias, safe='')}/download/"
        else:
            if version is None:
                version = self.model(name).get("latest_version")
                if version is None:
                    raise NotFound(f"model {name} has no version yet", status=404, errors={})
            where = f"/models/{quoted}/versions/{int(version)}/download/"
        try:
            response = self._http.stream(where)
        except FeatureUnavailable as exc:
            self._registry("GET", "/models/")  # raises FeatureUnavailable when there is no registry at all
            raise NotFound(f"model {name} has no such version or alias", status=404, errors={}) from exc
        return save_verified(response, path, expected_sha256="", fallback_name=f"{name}.safetensors")

    def _registry(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = self._http.request(method, path, **kw)
        except FeatureUnavailable as exc:
            raise FeatureUnavailable(
                f"{self.url} has no model registry ({method} /api/v1{path} answered 404 without a JSON body); "
                "it needs a TensorFleet server with /api/v1/models",
                status=exc.status,
                errors=exc.errors,
                body=exc.body,
            ) from None
        return response.json() if response.content else None


def _job_postfix(info: dict[str, Any]) -> dict[str, str]:
    metrics = info.get("metrics") or {}
    postfix = {"status": info["status"]}
    if metrics.get("train_loss") is not None:
        postfix["loss"] = f"{metrics['train_loss']:.4f}"
    if metrics.get("val_accuracy") is not None:
        postfix["acc"] = f"{metrics['val_accuracy']:.4f}"
    return postfix


def _ended_line(label: str, info: dict[str, Any]) -> str:
    line = f"{label} {info['status']}"
    if info.get("error"):
        line += f": {info['error']}"
    return line
