"""Which Ray a run uses, checked before any work, and how it starts one.

`resolve_address` picks the cluster (--address, else $RAY_ADDRESS) and `check_address` refuses
an address that is no Ray address, or where nothing answers, in a few seconds instead of after
Ray's half-minute of retries; `check_local_cpus` refuses resources that
a local Ray (this machine) can never provide. Both run before the output folder is touched.
`ray_session` connects (or starts a local Ray with `start_local_ray`, on loopback only, as the
test suite does too) and keeps SIGTERM handled like SIGINT (dlmia.signals) once Ray has put its
own handler in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from dlmia.errors import ConfigError, brief
from dlmia.signals import raise_on_sigterm
from tune.grid import Grid

PROBE_SECONDS = 3.0  # how long a cluster's address may take to accept a connection
QUIET: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}


def resolve_address(address: str | None) -> str | None:
    """The cluster a run uses: `address`, else $RAY_ADDRESS (set for a submitted job's
    entrypoint), checked by `check_address`; None (or `local`) for a Ray on this machine."""
    source = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address in (None, "local"):
        return None
    check_address(address, source)
    return address


def check_address(address: str, source: str = "--address") -> None:
    """Raise ConfigError (naming `source`) unless `address` is `auto`, `ray://HOST:PORT` or
    `HOST:PORT` and, for the last two, something accepts a connection there within
    `PROBE_SECONDS`."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("", "ray") or not parts.hostname or port is None:
        raise ConfigError(
            f"{source} {brief(address)}: not a Ray address; use auto, ray://HOST:PORT or "
            "HOST:PORT (a cluster's head)"
        )
    try:
        socket.create_connection((parts.hostname, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise ConfigError(
            f"{source} {brief(address)}: nothing answers at {parts.hostname}:{port} "
            f"({exc.strerror or exc}); start the cluster, or fix the address"
        ) from None


def check_local_cpus(grid: Grid) -> None:
    """Raise ConfigError when a side or attack of `grid` reserves more CPUs than this machine
    has: a local Ray could never schedule it."""
    cpus = os.cpu_count() or 1
    entries = [(f"recommenders.{name}", entry.resources) for name, entry in
               grid.recommenders.items()]
    entries += [(f"attacks.{name}", entry.resources) for name, entry in grid.attacks.items()]
    for where, resources in entries:
        if resources.num_cpus > cpus:
            raise ConfigError(
                f"{where}.resources.num_cpus: {resources.num_cpus:g} is more than this "
                f"machine's {cpus} CPUs, and a run without --address uses this machine only; "
                "lower it, or run on a cluster (--address)"
            )


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[float]:
    """Connect to Ray (or start a local one) for the run; yields the cluster's CPU count.

    Only a Ray started (or connected to) here is shut down afterwards; an initialised one is
    used and left alone.

    Raises:
        ConfigError: Ray cannot be reached at `address`.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started = not ray.is_initialized()
    if started:
        if address is None:
            start_local_ray()
        else:
            try:
                ray.init(address=address, **QUIET)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot connect to Ray at {brief(address)} ({exc})") from None
        raise_on_sigterm()  # ray.init installs a handler of its own
    try:
        yield float(ray.cluster_resources().get("CPU", 0.0))
    finally:
        if started:
            ray.shutdown()
            raise_on_sigterm()  # and its shutdown leaves another in place (below Python's)


def start_local_ray(num_cpus: int | None = None) -> None:
    """Start a Ray on this machine as every local run does: on loopback only (`loopback_node`),
    no dashboard, quiet; `num_cpus` of this machine's CPUs (None: all).

    No token authentication unless RAY_AUTH_MODE asks for it: the servers listen on loopback
    only, so only this machine's processes reach them, and Ray's default (token on) would write
    ~/.ray/auth_token, which every later Ray client here then uses. On a machine shared with
    untrusted users, set RAY_AUTH_MODE=token. A cluster (an address) keeps Ray's own rule:
    RAY_AUTH_MODE, else token auth when a token file is there.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    # The workers import what the driver imports: a recommender class of your own (module:Class)
    # from the folder you run in, as the driver finds it there.
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*paths, os.getcwd()]))
    options: dict[str, Any] = {"include_dashboard": False, **QUIET}
    with loopback_node():
        ray.init(address="local", num_cpus=num_cpus, **options)


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """Make a local Ray started inside this block take 127.0.0.1 as its node IP.

    Ray 2.60 binds its servers (GCS, raylet and object manager, every worker's gRPC server, the
    runtime-env and dashboard agents, the metrics exporter) to loopback when the node IP is a
    loopback address, and to every interface otherwise. It takes the node IP from the routable
    interface, even turning `_node_ip_address="127.0.0.1"` into it
    (services.resolve_ip_for_localhost), except where multi-node clusters are off: the flag
    ray_constants.ENABLE_RAY_CLUSTER (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, read when Ray is
    imported; off on macOS and Windows). This block turns that flag off; the servers get the
    node IP on their command lines, and the driver keeps it after the block.
    """
    from ray._private import ray_constants

    enabled = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enabled
