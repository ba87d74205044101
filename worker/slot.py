"""Entry point of one slot process (``python -m worker.slot``), started by the supervisor.

Its options arrive as JSON in ``HONE_WORKER_SLOT`` (the token too, so it never shows in
``ps``). SIGINT is ignored (Ctrl-C reaches the slot through the supervisor); SIGTERM asks the
loop to stop (a second signal to the supervisor kills the slot at once).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType

from worker.logs import configure
from worker.loop import SlotLoop, SlotOptions
from worker.supervisor import SLOT_ENV


def main() -> int:
    raw = json.loads(os.environ[SLOT_ENV])
    json_logs = bool(raw.pop("json_logs", False))
    configure(json_logs=json_logs)
    loop = SlotLoop(SlotOptions(**raw))

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        # Repeats are ignored: `kill` of the whole group and the supervisor's forwarded
        # signal arrive together. The hard stop is the supervisor's SIGKILL.
        loop.request_stop()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)
    return loop.run()


if __name__ == "__main__":
    sys.exit(main())
