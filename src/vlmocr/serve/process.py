"""Process-group shutdown with no orphans.

vLLM runs as several processes (API server, engine core, workers). The child is started
in its own session, so it leads a process group that holds all of them; stopping sends
a signal to the whole group, escalating SIGINT → SIGTERM → SIGKILL, and waits until no
live (non-zombie) process of the group remains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


def group_members(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes in process group `pgid`."""
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - non-Linux: ask the kernel about the group
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) >= 3 and int(rest[2]) == pgid and rest[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _wait_group(process: subprocess.Popen[bytes], pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.1)
        if process.poll() is not None and not group_members(pgid):
            return True
        if time.monotonic() > deadline:
            return False


def stop_group(process: subprocess.Popen[bytes], pgid: int, *, grace_s: float = 30.0) -> bool:
    """Stop every process of group `pgid`; True if it ended before SIGKILL was needed."""
    steps = ((signal.SIGINT, grace_s), (signal.SIGTERM, max(0.5, grace_s / 3)), (signal.SIGKILL, 10.0))
    for sig, wait_s in steps:
        if process.poll() is not None and not group_members(pgid):
            return True
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1.0)
            return True
        if _wait_group(process, pgid, wait_s):
            if sig == signal.SIGKILL:
                log.warning("server group %d had to be killed (SIGKILL)", pgid)
                return False
            return True
        log.warning("server group %d still running %.0f s after %s", pgid, wait_s, sig.name)
    return False


#: Longest temp folder name that leaves room for vLLM's IPC socket names (a UUID) in the
#: 107 bytes a Unix socket path may have.
MAX_SOCKET_DIR = 60


def short_temp_dir(prefix: str) -> Path:
    """A new temp folder whose path is short enough to hold Unix sockets (falls back to /tmp)."""
    base = tempfile.gettempdir()
    if len(base) + len(prefix) + 10 > MAX_SOCKET_DIR and os.access("/tmp", os.W_OK):
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
