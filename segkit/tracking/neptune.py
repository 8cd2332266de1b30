"""``neptune``: the article's tracker, kept working offline now that Neptune's hosted service has closed."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from segkit.tracking.base import TrackerWarning, histogram_figure_array, require, to_rgb_array
from segkit.tracking.registry import TRACKERS

_log = logging.getLogger(__name__)

__all__ = ["NeptuneTracker", "neptune_server_address"]

_LOCAL_MODES = ("offline", "debug", "read-only")


@TRACKERS.register("neptune")
class NeptuneTracker:
    """Log a run with ``neptune.init_run`` (neptune 1.x client), as the source article does.

    Modes (``mode`` is passed to ``neptune.init_run``):

    - ``"offline"`` (the default): no account, no network; the run is written under
      ``.neptune/offline/run__<id>__...`` in the working directory. ``segkit runs export .neptune/offline/run__...
      --to mlflow|tensorboard`` replays it into a tracker you run yourself; ``neptune sync`` uploads it to a
      Neptune-compatible server if you have one.
    - ``"debug"``: nothing is stored (for tests).
    - ``"async"`` / ``"sync"``: log to a server. Its address (inside the API token) is probed first with a
      ``connect_timeout``; if it cannot be reached, a single warning says so and the run falls back to
      ``"offline"`` (sync it later), instead of the client's minute of retries. Training never waits on it.

    What is logged: the resolved config under ``parameters``, every metric as a series ``<key>`` with its
    step (non-finite values skipped), images as image series ``<name>``, weight histograms as an image
    series ``weights/histograms`` (a matplotlib figure of all layers, as in the article).

    Args:
        project: ``"workspace/project"``; default ``NEPTUNE_PROJECT``.
        api_token: default ``NEPTUNE_API_TOKEN``; not needed offline.
        mode: ``"offline"``, ``"debug"``, ``"async"``, ``"sync"``; default ``NEPTUNE_MODE`` or ``"offline"``.
        name: the run name (``sys/name``).
        tags: run tags.
        connect_timeout: seconds to wait when probing a server (async/sync modes).
        run_dir: the segkit run folder, recorded as ``segkit/run_dir``.
        **init_kwargs: passed to ``neptune.init_run`` (e.g. ``capture_hardware_metrics=False``).

    Raises:
        MissingExtraError: ``neptune`` is not installed (``pip install "segkit[neptune]"``).
    """

    def __init__(
        self,
        project: str | None = None,
        api_token: str | None = None,
        mode: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        connect_timeout: float = 5.0,
        run_dir: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        neptune = require("neptune", "neptune", "the neptune tracker")
        from neptune.types import File

        self._File = File
        self.project = project or os.environ.get("NEPTUNE_PROJECT")
        self.api_token = api_token or os.environ.get("NEPTUNE_API_TOKEN")
        self.mode = mode or os.environ.get("NEPTUNE_MODE") or "offline"
        self.fallback_reason: str | None = None
        if self.mode not in _LOCAL_MODES:
            self.fallback_reason = self._unreachable_reason(connect_timeout)
            if self.fallback_reason is not None:
                self._warn_offline(self.fallback_reason)
                self.mode = "offline"
        kwargs: dict[str, Any] = dict(project=self.project, mode=self.mode, name=name, tags=tags, **init_kwargs)
        if self.mode not in _LOCAL_MODES:
            kwargs["api_token"] = self.api_token
        try:
            self.run = neptune.init_run(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a server-side failure must not stop training
            if self.mode in _LOCAL_MODES:
                raise
            self.fallback_reason = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
            )
            self._warn_offline(self.fallback_reason)
            self.mode = kwargs["mode"] = "offline"
            kwargs.pop("api_token", None)
            self.run = neptune.init_run(**kwargs)
        if run_dir is not None:
            self.run["segkit/run_dir"] = str(run_dir)

    # ----------------------------------------------------------- server probe
    def _unreachable_reason(self, timeout: float) -> str | None:
        """Return why the server cannot be used, or None when its address answers."""
        if not self.api_token:
            return "no API token (pass api_token= or set NEPTUNE_API_TOKEN)"
        address = neptune_server_address(self.api_token)
        if address is None:
            return "the API token does not hold a server address"
        host, port = address
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except OSError as exc:
            return f"cannot connect to {host}:{port} ({exc})"

    def _warn_offline(self, reason: str) -> None:
        message = (
            f"neptune tracker: the Neptune server cannot be reached in mode={self.mode!r}: {reason}. "
            "Logging this run offline under .neptune/offline instead; training continues. "
            "Upload it later with `neptune sync`, or replay it with `segkit runs export .neptune/offline/<run> "
            "--to mlflow`."
        )
        _log.warning(f"segkit: warning: {message}")
        warnings.warn(message, TrackerWarning, stacklevel=3)

    # --------------------------------------------------------------- protocol
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Assign the resolved config to ``parameters`` (lists and None written as strings)."""
        from neptune.utils import stringify_unsupported

        self.run["parameters"] = stringify_unsupported(dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Append each finite value to the series ``<key>`` at ``step``."""
        for key, value in metrics.items():
            f = float(value)
            if np.isfinite(f):
                self.run[key].append(f, step=int(step))

    def log_images(self, images: Mapping[str, Any], step: int) -> None:
        """Append each image to the image series ``<name>`` at ``step``."""
        from PIL import Image

        for key, image in images.items():
            self.run[key].append(self._File.as_image(Image.fromarray(to_rgb_array(image))), step=int(step))

    def log_histograms(self, values: Mapping[str, np.ndarray], step: int) -> None:
        """Append a figure of one histogram per layer to ``weights/histograms`` at ``step``."""
        from PIL import Image

        if values:
            picture = Image.fromarray(histogram_figure_array(values))
            self.run["weights/histograms"].append(self._File.as_image(picture), step=int(step))

    def close(self) -> None:
        """Stop the run (waits for the queued operations to be written)."""
        self.run.stop()

    @property
    def offline_dir(self) -> Path | None:
        """The ``.neptune/offline/run__<id>__...`` folder of this run in offline mode, if found."""
        matches = sorted(Path(".neptune", "offline").glob(f"run__{getattr(self.run, '_id', '')}__*"))
        return matches[-1] if matches else None


def neptune_server_address(api_token: str) -> tuple[str, int] | None:
    """Return ``(host, port)`` of the server named inside a Neptune API token, or None.

    A Neptune token is base64 of a JSON object with ``api_address`` (and ``api_url``).
    """
    try:
        padded = api_token + "=" * (-len(api_token) % 4)
        data = json.loads(base64.b64decode(padded).decode("utf-8"))
        url = urlparse(data.get("api_address") or data.get("api_url"))
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return None
    if not url.hostname:
        return None
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)
