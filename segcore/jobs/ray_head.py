"""A private local Ray head, for trying the cluster path on one machine (tests, bench/scaling.py).

It starts `ray start --head` in a temporary folder, on free ports, in its own process session, and ends exactly
the processes of that session and their descendants. `ray stop` is not used on purpose: it ends every Ray process
of this user on the machine, other people's clusters included. POSIX only (it finds the session by process group).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalRayHead:
    """`with LocalRayHead(cpus=2) as address:` → 'http://127.0.0.1:PORT', the dashboard address SEGCORE_BACKEND
    takes after 'ray:'. RuntimeError with Ray's output when the head does not start."""

    def __init__(self, cpus: int = 2) -> None:
        self.cpus = cpus
        self.address: str | None = None
        self._leader: int | None = None
        self._folder: Path | None = None

    def start(self) -> str:
        # Ray puts unix sockets under its temp dir: a short path under /tmp keeps them under the 107-byte limit
        self._folder = Path(tempfile.mkdtemp(prefix="segray-"))
        dashboard = free_port()
        ray_cli = Path(sys.executable).with_name("ray")
        command = [
            str(ray_cli) if ray_cli.exists() else "ray",
            "start",
            "--head",
            "--num-cpus",
            str(self.cpus),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--port",
            str(free_port()),
            "--ray-client-server-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--temp-dir",
            str(self._folder / "ray"),
            "--disable-usage-stats",
        ]
        environment = {**os.environ, "HOME": str(self._folder), "RAY_TMPDIR": str(self._folder)}
        head = subprocess.Popen(
            command,
            env=environment,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._leader = head.pid
        output, _ = head.communicate(timeout=START_TIMEOUT_S)
        if head.returncode:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{output}")
        self.address = f"http://127.0.0.1:{dashboard}"
        return self.address

    def stop(self) -> None:
        """End every process of the head's session, and their descendants (job entrypoints start sessions of their
        own); then remove its folder."""
        if self._leader is not None:
            _end_process_group(self._leader)
            self._leader = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _end_process_group(leader_pid: int) -> None:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == leader_pid:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    everyone = {p.pid: p for p in members}
    for process in members:
        try:
            everyone.update({c.pid: c for c in process.children(recursive=True)})
        except psutil.Error:
            pass
    for process in everyone.values():
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(everyone.values()), timeout=5)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
