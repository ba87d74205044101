"""The security tests reuse the API fixtures of ``tests/api`` (an app per database, a token per role)."""

from tests.api.conftest import api, make_api, postgres_template, sqlite_template

__all__ = ["api", "make_api", "postgres_template", "sqlite_template"]
