"""Alembic migrations for hone's own tables (``hone_*``)."""
