from datetime import UTC, datetime

from sqlalchemy import select

from service.db import Database
from service.tables import Base, Token


def test_datetimes_come_back_aware_in_utc(db_url: str) -> None:
    db = Database(db_url)
    Base.metadata.create_all(db.engine)
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.transaction() as session:
        session.add(Token(name="t", role="read", hash="h" * 64, prefix="p", created_at=created))
    with db.reading() as session:
        token = session.scalars(select(Token)).one()
    assert token.created_at == created
    assert token.created_at.tzinfo is not None
    db.dispose()


def test_a_failed_transaction_leaves_nothing_behind(db_url: str) -> None:
    db = Database(db_url)
    Base.metadata.create_all(db.engine)
    now = datetime.now(UTC)
    try:
        with db.transaction() as session:
            session.add(Token(name="t", role="read", hash="x" * 64, prefix="p", created_at=now))
            session.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.reading() as session:
        assert session.scalars(select(Token)).all() == []
    db.dispose()
