"""The wire contract: the typed models of everything that crosses hone's REST API.

The service declares its routes with these models, the worker and :mod:`hone.client`
parse and build bodies with them, so the three cannot disagree. This package imports
pydantic and the standard library only (an import-linter contract checks it).
"""

from protocol.health import HealthOut, ReadyOut
from protocol.leases import (
    MAX_STEPS_PER_CALL,
    CompleteIn,
    FailIn,
    FailureCause,
    FinishedOut,
    HeartbeatOut,
    HeldStep,
    LeasedStudy,
    LeasedTrial,
    LeaseGrant,
    LeaseOut,
    LeaseRequest,
    ReportIn,
    ReportOut,
    StepIn,
)
from protocol.objective import MAX_EPOCHS_DEFAULT, Direction, Objective, Trainer
from protocol.studies import (
    EnqueuedTrial,
    EnqueueRequest,
    FailureGroup,
    ImportanceEvaluator,
    ImportanceOut,
    OpenRoundRequest,
    RoundOut,
    RoundPreview,
    StudyDetail,
    StudyStatus,
    StudySummary,
    TrialCounts,
    TrialDetail,
    TrialOut,
    TrialPage,
    TrialState,
)

__all__ = [
    "MAX_EPOCHS_DEFAULT",
    "MAX_STEPS_PER_CALL",
    "CompleteIn",
    "Direction",
    "EnqueueRequest",
    "EnqueuedTrial",
    "FailIn",
    "FailureCause",
    "FinishedOut",
    "HealthOut",
    "HeartbeatOut",
    "HeldStep",
    "ImportanceEvaluator",
    "ImportanceOut",
    "LeaseGrant",
    "LeaseOut",
    "LeaseRequest",
    "LeasedStudy",
    "LeasedTrial",
    "Objective",
    "OpenRoundRequest",
    "ReadyOut",
    "ReportIn",
    "ReportOut",
    "RoundOut",
    "RoundPreview",
    "StepIn",
    "StudyDetail",
    "StudyStatus",
    "FailureGroup",
    "StudySummary",
    "Trainer",
    "TrialCounts",
    "TrialDetail",
    "TrialOut",
    "TrialPage",
    "TrialState",
]
