"""The one module that touches Optuna's tables and Optuna's private API.

Every row hone writes to Optuna's tables is written here, through hone's session, so a
grant, a report, a result, a failure with its retry, a user's enqueued configuration, a
new study and a round's box each commit in ONE transaction with hone's own rows: no crash
can leave Optuna and hone disagreeing, and on SQLite no write waits for a second
connection. The rows are exactly Optuna's (its ORM models, its value encodings), so
optuna-dashboard and ``optuna.load_study`` read them as usual; ``tests/api/
test_lease_rows.py`` compares them with what Optuna's own ask/tell/enqueue write, and is
the gate for an Optuna upgrade (pyproject pins the tested minor version). No other
module of hone's imports ``optuna.storages._*`` or names Optuna's tables
(``tests/unit/test_boundaries.py``): rows are in ``_rows``, storages in ``_storages``,
what Optuna's rung pruners recorded in ``_pruners``.

One path still writes through Optuna's engine: :func:`ask_trial`, for samplers that read
the study's history (TPE, grid). Their sampling is Optuna's own code; its trial commits
first and hone's row follows, and the reaper fails what a crash in between leaves
(:func:`orphans`).

One trigger of hone's sits on Optuna's ``studies`` (``study_deletion``, installed by
migration 0005): a study another tool deletes takes hone's rows with it.
"""

from service.optuna_tables import _study_deletion as study_deletion
from service.optuna_tables._pruners import RungJudgement, rung_judgement
from service.optuna_tables._rows import (
    CONFIG_NUMBER_ATTR,
    add_params,
    add_user_attrs,
    create_study,
    create_trials,
    delete_study,
    enqueue_trial,
    enqueued_configurations,
    fail_orphan,
    finish_trial,
    intermediate_values,
    last_intermediate,
    orphans,
    pop_waiting,
    reported_trial,
    set_intermediate_values,
    set_study_user_attr,
    set_system_attr,
    set_user_attr,
    study_name_in_use,
    trial_metrics,
    trial_state,
    trial_value,
    waiting_query,
)
from service.optuna_tables._storages import PrunerStorage, ask_trial, study_storage

__all__ = [
    "CONFIG_NUMBER_ATTR",
    "PrunerStorage",
    "RungJudgement",
    "add_params",
    "add_user_attrs",
    "ask_trial",
    "create_study",
    "create_trials",
    "delete_study",
    "enqueue_trial",
    "enqueued_configurations",
    "fail_orphan",
    "finish_trial",
    "intermediate_values",
    "last_intermediate",
    "orphans",
    "pop_waiting",
    "reported_trial",
    "rung_judgement",
    "set_intermediate_values",
    "set_study_user_attr",
    "set_system_attr",
    "set_user_attr",
    "study_deletion",
    "study_name_in_use",
    "study_storage",
    "trial_metrics",
    "trial_state",
    "trial_value",
    "waiting_query",
]
