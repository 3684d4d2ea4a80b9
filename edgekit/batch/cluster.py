"""Connecting to Ray: a local instance started here by default, or an existing cluster.

``address=None`` starts Ray on this machine for the run and stops it afterwards (the default
that works from the README with nothing else running); ``"auto"``, ``"host:port"`` or
``"ray://host:port"`` (Ray Client) join a running cluster, which stays up afterwards.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import EdgekitError, require


class ClusterError(EdgekitError):
    """Ray could not be started or the cluster could not be reached."""


def ray_module() -> Any:
    return require("ray", package="ray", extra="scale", purpose="edgekit batch on Ray")


@contextmanager
def ray_session(address: str | None, *, object_store_mb: int | None = None) -> Iterator[Any]:
    """Yields the ``ray`` module, connected; disconnects (and stops a local Ray) at the end."""
    ray = ray_module()
    require("pyarrow", package="pyarrow", extra="scale", purpose="batch output")
    # Ray's own usage-stats prompt and metrics would only add noise and background threads.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                              "configure_logging": True}
    if address is None:
        # Only actors run here: the idle task workers Ray would prestart per CPU only compete
        # with the actors' start on a small machine.
        kwargs.update(include_dashboard=False, num_cpus=os.cpu_count(),
                      _system_config={"prestart_worker_first_driver": False,
                                      "enable_worker_prestart": False})
        if object_store_mb:
            kwargs["object_store_memory"] = object_store_mb * 1024 * 1024
    try:
        _init(ray, address, kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start Ray on this machine" if address is None else f"reach Ray at {address}"
        raise ClusterError(
            f"Could not {where}: {exc}",
            hint="Check `ray status --address ADDRESS` on the cluster, or drop --address to "
            "run on this machine.",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


# Ray Client's proxy starts one server process per client connection; on a loaded head node
# that start can fail once ("Starting Ray client server failed", seen in 2 of 5 test runs on a
# busy 2-core machine) and succeed on the next try, so a ray:// connection gets a few attempts.
CLIENT_ATTEMPTS = 3


def _init(ray: Any, address: str | None, kwargs: dict[str, Any]) -> None:
    attempts = CLIENT_ATTEMPTS if address and address.startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except (ConnectionError, RuntimeError) as exc:
            if attempt == attempts:
                raise
            logging.getLogger(__name__).warning(
                "Ray Client at %s: %s; retrying (%d/%d)", address, exc, attempt + 1, attempts)
            ray.shutdown()
            time.sleep(2.0 * attempt)


def cluster_cpus(ray: Any) -> float:
    return float(ray.cluster_resources().get("CPU", 1.0))
