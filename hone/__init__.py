"""hone: hyperparameter search as a service.

This package is the front door (the ``hone`` command, ``hone up``) and holds the one
settings class that every process shares. ``service``, ``worker`` and ``trainer`` are
the parts it joins; see ARCHITECTURE.md.
"""

__version__ = "0.1.0"
