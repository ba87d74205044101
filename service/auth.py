"""Bearer tokens: creation, hashing, verification, revocation and roles.

A token is ``hone_<43 url-safe characters>`` (32 random bytes). Only its SHA-256 hash is
stored; the secret is shown once, when it is created. Roles nest: ``admin`` may do what
``worker`` may, and ``worker`` what ``read`` may. ``HONE_ADMIN_TOKEN`` is a bootstrap
admin that lives in settings only, so a fresh compose stack can be driven at once;
``HONE_WORKER_TOKEN`` is its worker-role peer, so the stack's workers can start with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.tables import Token

Role = Literal["read", "worker", "admin"]
ROLES: tuple[Role, ...] = ("read", "worker", "admin")
TOKEN_PREFIX = "hone_"
_RANK = {role: rank for rank, role in enumerate(ROLES)}
# last_used_at is a hint for operators, not an audit log: write it at most this often.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class Principal:
    """Who made a request: the role of the token and which token (None for the bootstrap admin)."""

    role: Role
    token_id: int | None
    name: str
    last_used_at: datetime | None = None

    def may(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def needs_touch(self, now: datetime) -> bool:
        return self.last_used_at is None or self.last_used_at < now - _LAST_USED_RESOLUTION

    def touched(self, now: datetime) -> Principal:
        return replace(self, last_used_at=now)


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and 16 <= len(token) <= 128 and token.isascii()


def create_token(session: Session, *, role: Role, name: str, now: datetime) -> tuple[Token, str]:
    """Store a new token and return its row and its secret (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    secret = generate_token()
    row = Token(name=name, role=role, hash=hash_token(secret), prefix=secret[:12], created_at=now)
    session.add(row)
    session.flush()
    return row, secret


def list_tokens(session: Session) -> list[Token]:
    return list(session.scalars(select(Token).order_by(Token.id)))


def revoke_token(session: Session, *, token_id: int, now: datetime) -> bool:
    """Revoke a token; False if there is no such token or it was already revoked."""
    result = session.execute(
        update(Token).where(Token.id == token_id, Token.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def has_active_tokens(session: Session) -> bool:
    return session.scalar(select(Token.id).where(Token.revoked_at.is_(None)).limit(1)) is not None


def bootstrap_principal(token: str, *, admin_token: str | None, worker_token: str | None) -> Principal | None:
    """The bootstrap admin or worker when ``token`` is one of the settings' tokens (no database)."""
    if admin_token is not None and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal(role="admin", token_id=None, name="bootstrap admin")
    if worker_token is not None and hmac.compare_digest(token.encode(), worker_token.encode()):
        return Principal(role="worker", token_id=None, name="bootstrap worker")
    return None


def stored_principal(session: Session, *, digest: str) -> Principal | None:
    """The principal of the stored, unrevoked token whose hash is ``digest``."""
    row = session.scalars(select(Token).where(Token.hash == digest)).one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.hash, digest):
        return None
    if row.role not in ROLES:
        return None
    return Principal(role=row.role, token_id=row.id, name=row.name, last_used_at=row.last_used_at)


def touch_token(session: Session, *, token_id: int, now: datetime) -> None:
    """Record that a token was used (at most once a minute, so reads stay reads)."""
    session.execute(
        update(Token)
        .where(Token.id == token_id)
        .where((Token.last_used_at.is_(None)) | (Token.last_used_at < now - _LAST_USED_RESOLUTION))
        .values(last_used_at=now)
    )


class PrincipalCache:
    """Tokens this API process checked in the last ``seconds``, by their hash.

    A fleet sends one heartbeat per lease every few seconds with the same worker token; a
    database read for each would cost more than the heartbeat itself. The price is that a
    token revoked by another process (``hone token revoke``) keeps working here for up to
    ``seconds``. Unknown and revoked tokens are never cached: each refusal reads the database.
    """

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= _CACHE_LIMIT:  # many distinct tokens: start over, never grow unbounded
            self._entries.clear()
        self._entries[digest] = (self._clock() + self.seconds, principal)
