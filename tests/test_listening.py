"""A local run's Ray listens on loopback only: none of its servers is reachable from the network.

The Ray is started as `run_grid` starts it (tune.cluster.ray_session), in a fresh Python process
that has imported Ray before (the harder case: Ray reads its node-IP settings at import). Every
TCP socket that this process and its descendants listen on (the GCS, the raylet, the agents, the
driver's and the workers' gRPC servers), read from /proc, must be bound to 127.0.0.1 or ::1.
Other Ray sessions on the machine are not looked at.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SESSION = textwrap.dedent(
    """
    import sys
    import ray
    from tune.cluster import ray_session

    with ray_session(None):
        ray.get(ray.remote(lambda: 0).remote())  # a worker is up: it listens too
        print(ray.util.get_node_ip_address(), flush=True)
        sys.stdin.readline()
    """
)
LISTEN = "0A"  # the state column of /proc/net/tcp*


def test_local_ray_listens_on_loopback_only() -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", SESSION], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert driver.stdin is not None and driver.stdout is not None
    try:
        node_ip = driver.stdout.readline().strip()
        sockets: set[tuple[int, str, str]] = set()
        for _ in range(3):  # a few looks, for servers that start late
            sockets |= {(pid, comm(pid), address) for pid, address in listening(driver.pid)}
            time.sleep(1.0)
    finally:
        driver.stdin.close()
        driver.wait(timeout=120)
    table = "\n".join(f"{pid} {name} {address}" for pid, name, address in sorted(sockets))
    assert {"gcs_server", "raylet"} <= {name for _, name, _ in sockets}, table
    assert all(is_loopback(address.rsplit(":", 1)[0]) for _, _, address in sockets), table
    assert node_ip == "127.0.0.1" and driver.returncode == 0


def test_the_suites_own_ray_listens_on_loopback_only(local_ray: Any) -> None:
    """The tests' Ray (conftest.local_ray) is started as a local run starts its own."""
    local_ray.get(local_ray.remote(lambda: 0).remote())  # a worker is up: it listens too
    sockets = listening(os.getpid())
    assert {comm(pid) for pid, _ in sockets} >= {"gcs_server", "raylet"}, sockets
    assert all(is_loopback(address.rsplit(":", 1)[0]) for _, address in sockets), sockets
    assert local_ray.util.get_node_ip_address() == "127.0.0.1"


def listening(root: int) -> list[tuple[int, str]]:
    """(PID, `address:port`) of every TCP socket that `root` or a descendant listens on."""
    owners = {inode: pid for pid in descendants(root) for inode in socket_inodes(pid)}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == LISTEN and inode in owners:
                host, port = local.split(":")
                found.append((owners[inode], f"{decode_host(host)}:{int(port, 16)}"))
    return found


def descendants(root: int) -> set[int]:
    """`root` and every process below it (by the parent PIDs in /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` has open ("socket:[INODE]" under /proc/PID/fd)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def comm(pid: int) -> str:
    """The process's name (/proc/PID/comm), or "" when it has gone."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def decode_host(hex_host: str) -> str:
    """An address of /proc/net/tcp*: 4-byte words in host (little-endian) order, in hex."""
    raw = bytes.fromhex(hex_host)
    return str(ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1)."""
    address = ipaddress.ip_address(host)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
