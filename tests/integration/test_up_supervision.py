"""How `hone up` supervises its children, with stand-in processes instead of the real stack."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from hone.stack import Child, Stack

# A child that appends its name to a file when SIGTERM arrives, after `delay` seconds.
ON_TERM = """
import signal, sys, time
name, path, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
def stop(*_):
    time.sleep(delay)
    with open(path, "a") as out:
        out.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(path + "." + name + ".ready", "w").close()
while True:
    time.sleep(0.05)
"""
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
while True:
    time.sleep(0.05)
"""


def child(tmp_path: Path, name: str, code: str, *args: str, critical: bool = True) -> Child:
    argv = [sys.executable, "-c", code, *args]
    return Child(name, argv, dict(os.environ), tmp_path / f"{name}.log", critical=critical)


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_shutdown_stops_workers_then_the_api_then_the_dashboard(tmp_path: Path) -> None:
    order = tmp_path / "order"
    stack = Stack(data_dir=tmp_path, say=lambda line: None)
    # The worker takes a while to hand its trial back; the API must still be up meanwhile.
    stack.children = [
        child(tmp_path, "api", ON_TERM, "api", str(order), "0"),
        child(tmp_path, "dashboard", ON_TERM, "dashboard", str(order), "0"),
        child(tmp_path, "worker-1", ON_TERM, "worker-1", str(order), "0.5", critical=False),
    ]
    for each in stack.children:
        each.start()
    for name in ("api", "dashboard", "worker-1"):
        wait_for(Path(f"{order}.{name}.ready"))
    stack.shutdown(worker_timeout=10, server_timeout=10)
    assert order.read_text().split() == ["worker-1", "api", "dashboard"]
    assert not any(each.alive() for each in stack.children)


def test_a_child_that_ignores_sigterm_is_killed_after_its_bound(tmp_path: Path) -> None:
    said: list[str] = []
    stack = Stack(data_dir=tmp_path, say=said.append)
    stack.children = [child(tmp_path, "worker-1", STUBBORN, str(tmp_path / "ready"), critical=False)]
    stack.children[0].start()
    wait_for(tmp_path / "ready")
    started = time.monotonic()
    stack.shutdown(worker_timeout=0.5, server_timeout=0.5)
    assert time.monotonic() - started < 5
    assert not stack.children[0].alive()
    assert any("did not stop within" in line for line in said)


def test_a_dead_worker_is_reported_and_a_dead_api_stops_the_stack(tmp_path: Path) -> None:
    said: list[str] = []
    stack = Stack(data_dir=tmp_path, say=said.append, workers=1)
    stack.children = [
        child(tmp_path, "api", "import time, sys; time.sleep(1.5); print('api boom'); sys.exit(4)"),
        child(tmp_path, "worker-1", "import sys; print('worker boom'); sys.exit(3)", critical=False),
    ]
    for each in stack.children:
        each.start()
    assert stack.supervise(poll=0.05) == 1
    stack.shutdown(worker_timeout=1, server_timeout=1)
    text = "\n".join(said)
    assert "worker-1 exited with code 3" in text and "worker boom" in text
    assert "every worker has exited" in text
    assert "api exited with code 4" in text and "api boom" in text
    assert text.index("worker-1 exited") < text.index("api exited")
