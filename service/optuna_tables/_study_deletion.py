"""hone's trigger on Optuna's ``studies`` table: a study deleted by another tool takes
hone's rows with it (migration 0005 installs it; a change here needs a new migration).

optuna-dashboard's trash icon, or ``optuna.delete_study``, deletes a row of ``studies``
on a connection that knows nothing of hone. The trigger deletes hone's rows of that study
in the deleting transaction, whoever deletes it: a trigger, not a foreign key, because
SQLite enforces foreign keys only on connections that ask for it, and optuna-dashboard's
does not. It records the id in ``hone_deleted_studies`` (see ``create_study``: no id is
used twice on SQLite).
"""

from __future__ import annotations

from collections.abc import Callable

TRIGGER = "hone_forget_deleted_study"

# A hone study whose Optuna study is gone, or whose id now names a different Optuna study.
ORPHANED_STUDIES = """
SELECT id FROM hone_studies WHERE NOT EXISTS (
    SELECT 1 FROM studies WHERE studies.study_id = hone_studies.id AND studies.study_name = hone_studies.name
)
"""


def forget_study(study_id: str) -> list[str]:
    """Statements deleting hone's rows of one study (``study_id`` is SQL: a number or
    ``OLD.study_id``); trials first, so 0002's counter triggers see their counts go
    before the counter rows do."""
    return [
        f"DELETE FROM hone_trials WHERE study_id = {study_id}",
        f"DELETE FROM hone_trial_counts WHERE study_id = {study_id}",
        f"DELETE FROM hone_rounds WHERE study_id = {study_id}",
        "UPDATE hone_workers SET current_study_id = NULL, current_trial_number = NULL "
        f"WHERE current_study_id = {study_id}",
        f"DELETE FROM hone_studies WHERE id = {study_id}",
        f"INSERT INTO hone_deleted_studies (id) VALUES ({study_id}) ON CONFLICT (id) DO NOTHING",
    ]


def install_deletion_trigger(execute: Callable[[str], object], *, postgresql: bool) -> None:
    body = "".join(f"{statement};\n" for statement in forget_study("OLD.study_id"))
    if postgresql:
        execute(
            f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}RETURN NULL;\nEND\n$$"
        )
        execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON studies FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()")
    else:
        execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON studies BEGIN\n{body}END")


def drop_deletion_trigger(execute: Callable[[str], object], *, postgresql: bool) -> None:
    if postgresql:
        execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON studies")
        execute(f"DROP FUNCTION IF EXISTS {TRIGGER}()")
    else:
        execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
