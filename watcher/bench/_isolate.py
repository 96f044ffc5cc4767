"""Run another module's benchmark function in a child process, bounded in time.

Each figure then starts from a fresh interpreter (no event loop, thread or netlink state left by
the previous one), and a benchmark that hangs costs its time limit, not the whole run: the child
gets SIGINT (so its labs unwind and remove their namespaces), then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
_CODE = """
import json, logging, sys
# The actuators log each flip and repair at WARNING; the bench's table is the output here.
logging.getLogger("watcher.routes").setLevel(logging.ERROR)
from importlib import import_module
fn = getattr(import_module(sys.argv[1]), sys.argv[2])
result = fn(**json.loads(sys.argv[3]))
print("\\nRESULT " + json.dumps(result, default=str), flush=True)
"""


def call(module: str, func: str, kwargs: dict[str, Any], timeout: float) -> Any:
    """`module.func(**kwargs)` in a child process; its JSON-able result, or RuntimeError."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CODE, module, func, json.dumps(kwargs)],
        stdout=subprocess.PIPE, cwd=_ROOT, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        raise RuntimeError(f"{module}.{func} did not finish within {timeout:g} s (stopped)") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{module}.{func} exited with {proc.returncode} (its traceback is above)")
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{module}.{func} printed no result")
