"""The lecture's basic recipe as a diagnosis of a study's best trials.

Error: ``1 − value`` for a maximized metric (a score on [0, 1]: accuracy, F1, AUC, R²),
the value for a minimized one (a loss, RMSE: already an error). A trial's training error
comes from the training counterpart of the study's metric in its result: ``train_<m>``,
or ``train_<x>`` when the metric ``m`` is ``val_<x>`` (the built-in trainer reports
``train_accuracy`` beside ``val_accuracy``, measured in evaluation mode).

    avoidable bias = training error − target error   (objective.target_error, else 0)
    variance       = validation error − training error

High bias when the avoidable bias is above its threshold, high variance when the
variance is, ``both`` when both are, ``fine`` when neither. Thresholds, in the error's
units: 0.05 each for a maximized metric (five points of accuracy: the course's examples
put 1 point on the fine side and 10 or 15 on the high one); for a minimized metric,
which has no scale of its own, a quarter of the validation error, and the bias is judged
only against an explicit ``objective.target_error`` (against 0 every loss looks biased).
A request may set both thresholds. The study's figures are the medians over its best
trials that report a training metric: the best fifth of the completed trials, at least
one and at most ``TOP`` (the recipe is about the best model, not the study's average).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol import DiagnosedTrial, DiagnosisOut, Proposal, Thresholds, Verdict
from service import optuna_tables, recipe, rounds
from service.caches import study_spec
from service.errors import Conflict, InvalidInput
from service.narrowing import Box
from service.spec import StudySpec
from service.tables import Study, Trial

TOP = 5
TOP_SHARE = 0.2
SCAN = 50  # best trials looked at for the top ones that report a training metric
SCORE_THRESHOLD = 0.05
LOSS_SHARE = 0.25

ADVICE: dict[Verdict, list[str]] = {
    "high_bias": [
        "High bias: the model does not fit its training set well enough. Fix this first; more "
        "data will not help until it is down.",
        "Bigger network: more hidden layers (n_layers) and more hidden units (hidden_units).",
        "Train longer (the recipe's round doubles max_epochs, up to objective.max_epochs_limit) "
        "or optimize better (Adam, a tuned learning rate).",
        "Regularize less: lower l2, keep_prob closer to 1.",
        "Or try another architecture.",
    ],
    "high_variance": [
        "High variance: the model fits its training set much better than the validation set.",
        "More training data, if you can get it.",
        "Regularize more: raise l2, lower keep_prob (more dropout), stop early.",
        "Or try another architecture.",
    ],
    "both": [
        "High bias and high variance: fix the bias first, then the variance.",
        "A bigger network (n_layers, hidden_units) trained longer lowers the bias; once it is "
        "down, regularize more (l2 up, keep_prob down) or get more data for the variance.",
    ],
    "fine": [
        "Low bias and low variance: by the recipe this model is done.",
        "Further gains need a lower target (better data or features) or finer tuning: the "
        "narrowing rule keeps refining the box.",
    ],
}


@dataclass(frozen=True)
class Reading:
    """How errors are read from one study's metric."""

    metric: str
    maximize: bool

    def error(self, value: float) -> float:
        return 1.0 - value if self.maximize else value

    def training_names(self) -> list[str]:
        names = [f"train_{self.metric}"]
        for prefix in ("val_", "validation_"):
            if self.metric.startswith(prefix):
                names.append(f"train_{self.metric.removeprefix(prefix)}")
        return names

    def described(self) -> str:
        return f"1 − {self.metric}" if self.maximize else self.metric


def judge(
    *,
    training_error: float,
    validation_error: float,
    target: float,
    bias: float,
    variance: float,
    bias_judged: bool,
) -> Verdict:
    """The verdict for one pair of errors against thresholds ``bias`` and ``variance``."""
    high_bias = bias_judged and training_error - target > bias
    high_variance = validation_error - training_error > variance
    if high_bias and high_variance:
        return "both"
    if high_bias:
        return "high_bias"
    return "high_variance" if high_variance else "fine"


def diagnose(
    session: Session,
    *,
    study: Study,
    round: int | None = None,
    bias_threshold: float | None = None,
    variance_threshold: float | None = None,
) -> DiagnosisOut:
    """The recipe's diagnosis of ``study`` (or of one ``round``) and, for a built-in trainer,
    the next round's box it proposes. Raises InvalidInput for a round the study does not
    have, Conflict when no best trial reports a training metric."""
    spec = study_spec(study)
    # Compared before any query: a round past the current one does not exist (and a huge
    # number would overflow SQLite's integers).
    if round is not None and not 1 <= round <= study.current_round:
        raise InvalidInput(
            ("query", "round"), f"study {study.id} has rounds 1 to {study.current_round}, not {round}"
        )
    reading = Reading(metric=study.metric, maximize=study.direction == "maximize")
    found, skipped = _best_with_training(session, study=study, round=round, reading=reading)
    if not found:
        raise Conflict(_not_enough(study, round, reading, skipped))
    target = spec.objective.target_error
    target_value = 0.0 if target is None else target
    train_errors = [t for _, _, t, _ in found]
    val_errors = [v for _, _, _, v in found]
    training_error = statistics.median(train_errors)
    validation_error = statistics.median(val_errors)
    bias_judged = reading.maximize or target is not None or bias_threshold is not None
    thresholds = _thresholds(reading, validation_error, bias_threshold, variance_threshold)

    def verdict_of(train_error: float, val_error: float) -> Verdict:
        return judge(
            training_error=train_error,
            validation_error=val_error,
            target=target_value,
            bias=thresholds.bias,
            variance=thresholds.variance,
            bias_judged=bias_judged,
        )

    verdict = verdict_of(training_error, validation_error)
    trials = [
        DiagnosedTrial(
            number=trial.number,
            round=trial.round,
            value=float(trial.value if trial.value is not None else 0.0),
            training_error=t,
            validation_error=v,
            avoidable_bias=t - target_value,
            variance=v - t,
            verdict=verdict_of(t, v),
        )
        for trial, _, t, v in found
    ]
    proposal, note = _proposal(session, study=study, spec=spec, verdict=verdict, incumbent=found[0][0])
    return DiagnosisOut(
        study_id=study.id,
        round=round,
        metric=study.metric,
        training_metric=found[0][1],
        error=reading.described(),
        target_error=target_value,
        target_source="default" if target is None else "objective.target_error",
        training_error=training_error,
        validation_error=validation_error,
        avoidable_bias=training_error - target_value,
        variance=validation_error - training_error,
        verdict=verdict,
        bias_judged=bias_judged,
        thresholds=thresholds,
        why=_why(
            verdict, training_error, validation_error, target_value, thresholds, bias_judged, len(found)
        ),
        advice=ADVICE[verdict],
        trials=trials,
        trials_without_training_metric=skipped,
        proposal=proposal,
        proposal_note=note,
    )


def recipe_box(session: Session, *, study: Study) -> tuple[Box, int | None]:
    """The box ``POST /rounds`` opens for ``"box": "diagnosis"``, and the epochs per trial
    when the recipe says train longer (None: unchanged); raises InvalidInput for a python
    objective (advice only) and Conflict when the study cannot be diagnosed yet."""
    if study_spec(study).objective.built_in is None:
        raise InvalidInput(
            ("body", "box"),
            '"diagnosis" proposes a box for built-in trainers only; a python objective gets the '
            "diagnosis and its advice (GET /studies/{id}/diagnosis) but no box: give one explicitly",
        )
    proposal = diagnose(session, study=study).proposal
    assert proposal is not None
    return recipe.as_box(proposal), proposal.max_epochs


def _best_with_training(
    session: Session, *, study: Study, round: int | None, reading: Reading
) -> tuple[list[tuple[Trial, str, float, float]], int]:
    found: list[tuple[Trial, str, float, float]] = []
    skipped = 0
    query = select(func.count()).where(
        Trial.study_id == study.id, Trial.state == "complete", Trial.value.is_not(None)
    )
    if round is not None:
        query = query.where(Trial.round == round)
    completed = int(session.scalar(query) or 0)
    top = max(1, min(TOP, math.ceil(TOP_SHARE * completed)))
    for trial in rounds.top_trials(session, study=study, limit=SCAN, round=round):
        if trial.value is None:
            continue
        metrics = optuna_tables.trial_metrics(session, trial.trial_id)
        name = next((n for n in reading.training_names() if n in metrics), None)
        if name is None:
            skipped += 1
            continue
        found.append((trial, name, reading.error(metrics[name]), reading.error(trial.value)))
        if len(found) == top:
            break
    return found, skipped


def _thresholds(
    reading: Reading, validation_error: float, bias: float | None, variance: float | None
) -> Thresholds:
    if reading.maximize:
        default, basis = SCORE_THRESHOLD, f"{SCORE_THRESHOLD:g} of error (1 − score): a score's own units"
    else:
        default = LOSS_SHARE * abs(validation_error)
        basis = f"{LOSS_SHARE:g} × the validation error: a minimized metric has no scale of its own"
    if bias is not None or variance is not None:
        basis = f"given by the request where set; else {basis}"
    return Thresholds(
        bias=default if bias is None else bias,
        variance=default if variance is None else variance,
        basis=basis,
    )


def _why(
    verdict: Verdict,
    training_error: float,
    validation_error: float,
    target: float,
    thresholds: Thresholds,
    bias_judged: bool,
    n: int,
) -> str:
    bias, variance = training_error - target, validation_error - training_error
    over = "above" if bias > thresholds.bias else "not above"
    bias_words = (
        f"avoidable bias {bias:.4g} (training error {training_error:.4g} − target {target:.4g}) is "
        f"{over} {thresholds.bias:.4g}"
        if bias_judged
        else f"avoidable bias {bias:.4g} not judged (a minimized metric without objective.target_error)"
    )
    v_over = "above" if variance > thresholds.variance else "not above"
    variance_words = (
        f"variance {variance:.4g} (validation error {validation_error:.4g} − training error "
        f"{training_error:.4g}) is {v_over} {thresholds.variance:.4g}"
    )
    label = {"high_bias": "high bias", "high_variance": "high variance", "both": "both", "fine": "fine"}[
        verdict
    ]
    return f"{label}: {bias_words}; {variance_words} (medians of the best {n} trial{'s' if n != 1 else ''})"


def _proposal(
    session: Session, *, study: Study, spec: StudySpec, verdict: Verdict, incumbent: Trial
) -> tuple[Proposal | None, str | None]:
    if spec.objective.built_in is None:
        return None, (
            "a python objective gets advice only: hone cannot know which of its parameters make the "
            "network bigger or regularize it"
        )
    narrowed = rounds.preview_next_round(session, study=study)
    current = rounds.current_round(session, study=study)
    proposal = recipe.propose(
        spec,
        verdict=verdict,
        narrowed=narrowed,
        current=current.box,
        incumbent=incumbent.params,
        epochs=rounds.epochs(spec, current),
    )
    return proposal, None


def _not_enough(study: Study, round: int | None, reading: Reading, skipped: int) -> str:
    where = f"round {round} of study {study.id}" if round is not None else f"study {study.id}"
    names = " or ".join(reading.training_names())
    if skipped == 0:
        return f"{where} has no completed trial yet: the diagnosis reads the best completed trials"
    return (
        f"none of the best {skipped} completed trials of {where} reports a training metric ({names}) "
        f"beside {reading.metric}: the built-in trainer reports it; a python objective returns it "
        'in its result ({"value": ..., "' + reading.training_names()[-1] + '": ...})'
    )
