"""Run a command as an argument list (never a shell), with a timeout and its output captured."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL = 32 * 1024
KILL_GRACE_SECONDS = 5


@dataclass
class Result:
    returncode: int | None  # None: stopped at the timeout
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(argv: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """stdout and stderr interleaved, the last OUTPUT_TAIL characters. A command still running at
    `timeout` is stopped with its whole process group (SIGTERM, then SIGKILL)."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        return Result(127, f"cannot start {argv[0]}: {e.strerror or e}")
    try:
        out, _ = proc.communicate(timeout=timeout)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        out = _stop(proc)
        returncode = None
    return Result(returncode, out.decode(errors="replace")[-OUTPUT_TAIL:])


def _stop(proc: subprocess.Popen[bytes]) -> bytes:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            out, _ = proc.communicate(timeout=wait)
            return out
        except subprocess.TimeoutExpired:
            continue
    out, _ = proc.communicate()
    return out


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def describe(result: Result, timeout: float) -> str:
    if result.returncode is None:
        return f"stopped after the {timeout:g} s timeout"
    return "exit status 0" if result.ok else f"failed with exit status {result.returncode}"
