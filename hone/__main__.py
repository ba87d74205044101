"""``python -m hone`` is the ``hone`` command (``hone up`` starts its children this way)."""

from hone.cli import main

main()
