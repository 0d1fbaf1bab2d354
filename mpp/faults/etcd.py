"""A real 3-member etcd cluster in a scenario's directory, for the store faults.

mpp's promise for a distributed store is that one member of three lost changes nothing:
the two left keep quorum, and mpp's client tries the next endpoint. Only a real cluster
can show that (a leader election, a refused endpoint, a member catching up when it
returns), so this starts three etcd processes on loopback, kills one with SIGKILL, and
restarts it on its own data directory the way a supervisor would.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from mpp.sandbox.etcd import etcd_binary

HOST = "127.0.0.1"
PREFIX = "/mpp-faults"


def _free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (bound at once, released together: distinct).
    The harness gets only the sandbox's block from its caller; etcd binds these within
    milliseconds, which leaves a race with another process too short to matter here."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class EtcdCluster:
    """Three members m0..m2 under `directory`; `state_url` is what mpp's [mpp] state names."""

    def __init__(self, directory: Path, members: int = 3) -> None:
        self.directory = directory
        ports = _free_ports(2 * members)
        self.client_ports = ports[:members]
        self.peer_ports = ports[members:]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * members
        self._cluster = ",".join(f"m{i}=http://{HOST}:{p}" for i, p in enumerate(self.peer_ports))

    @property
    def state_url(self) -> str:
        return "etcd://" + ",".join(f"{HOST}:{p}" for p in self.client_ports) + PREFIX

    def endpoint(self, i: int) -> str:
        return f"http://{HOST}:{self.client_ports[i]}"

    def start(self, timeout: float = 15.0) -> None:
        """Every member, then until the cluster has a leader (a store that cannot commit
        yet would fail mpp's first cycle, not the fault under test)."""
        for i in range(len(self.procs)):
            self._spawn(i, "new")
        deadline = time.monotonic() + timeout
        while self.leader() is None:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd cluster had no leader within {timeout:g} s")
            time.sleep(0.05)

    def _spawn(self, i: int, state: str) -> None:
        d = self.directory / f"m{i}"
        d.mkdir(parents=True, exist_ok=True)
        peer = f"http://{HOST}:{self.peer_ports[i]}"
        log = (d / "etcd.log").open("ab")
        self.procs[i] = subprocess.Popen(
            [
                etcd_binary(),
                f"--name=m{i}",
                f"--data-dir={d / 'data'}",
                f"--listen-client-urls={self.endpoint(i)}",
                f"--advertise-client-urls={self.endpoint(i)}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={self._cluster}",
                f"--initial-cluster-state={state}",
                "--initial-cluster-token=mpp-faults",
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=1000",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def _status(self, i: int) -> tuple[str, str] | None:
        """(its member id, the leader it knows) from /v3/maintenance/status; None when the
        member does not answer. etcd's JSON gateway writes 64-bit ids as strings."""
        if self.procs[i] is None:
            return None
        try:
            r = httpx.post(self.endpoint(i) + "/v3/maintenance/status", json={}, timeout=0.5)
            doc = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        if r.status_code != 200 or not isinstance(doc, dict):
            return None
        return str(doc.get("header", {}).get("member_id", "")), str(doc.get("leader", ""))

    def leader(self) -> int | None:
        """The index of the running member that the running members say leads, if any."""
        seen = {i: s for i in range(len(self.procs)) if (s := self._status(i)) is not None}
        ids = {member: i for i, (member, _) in seen.items()}
        for _, leader in seen.values():
            if leader in ids:
                return ids[leader]
        return None

    def kill(self, member: int | str) -> int:
        """SIGKILL member `member`: an index, "leader" (whichever leads now) or "follower"
        (the first running member that does not lead: the case with no election); returns
        the index killed."""
        leader = self.leader() if member in ("leader", "follower") else None
        if member in ("leader", "follower") and leader is None:
            raise RuntimeError("etcd cluster has no leader (to kill, or to spare)")
        if member == "leader":
            index = leader
        elif member == "follower":
            index = next(i for i, p in enumerate(self.procs) if p is not None and i != leader)
        else:
            index = int(member)
        assert index is not None
        proc = self.procs[index]
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"etcd member m{index} is not running")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        self.procs[index] = None
        return index

    def restart(self, index: int, timeout: float = 10.0) -> None:
        """Start a killed member again on its data directory, until it answers /health."""
        self._spawn(index, "existing")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.endpoint(index) + "/health", timeout=0.5).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"etcd member m{index} did not come back within {timeout:g} s")

    def healthy(self) -> list[bool]:
        """Per member: answers /health (true once it is in a cluster with quorum)."""
        out = []
        for i in range(len(self.procs)):
            try:
                r = httpx.get(self.endpoint(i) + "/health", timeout=0.5)
                out.append(r.status_code == 200 and '"true"' in r.text)
            except httpx.HTTPError:
                out.append(False)
        return out

    def route_config(self, text: str) -> str:
        """An mpp config whose store is this cluster instead of the sandbox's SQLite file."""
        text, found = re.subn(
            r'^state = ".*"$', f'state = "{self.state_url}"', text, count=1, flags=re.M
        )
        if not found:
            raise ValueError("no [mpp] state line in the config")
        return text

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            self.procs[i] = None
