"""The service validates built-in objectives through the trainer registry without torch."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_service_spec_and_the_trainer_registry_does_not_import_torch() -> None:
    code = (
        "import sys, service.spec, service.sampling, trainer.registry; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
