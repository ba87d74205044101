"""The wire's Objective against the service's: same fields, defaults and constraints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocol import MAX_EPOCHS_DEFAULT, Objective
from protocol.leases import LeasedStudy, LeasedTrial, LeaseGrant, LeaseOut
from service import spec
from service.objective import SERVICE_ONLY_FIELDS


def test_the_study_specs_objective_is_the_wire_objective_plus_its_checks() -> None:
    assert issubclass(spec.Objective, Objective)


@pytest.mark.parametrize("name", sorted(set(spec.Objective.model_fields) - {"trainer"} - SERVICE_ONLY_FIELDS))
def test_the_study_spec_redeclares_no_field_but_the_trainer(name: str) -> None:
    # Defaults and constraints live once, on the wire's model; the spec narrows only the
    # trainer's name to the registry's.
    assert repr(spec.Objective.model_fields[name]) == repr(Objective.model_fields[name])


def test_objective_has_no_field_the_study_spec_lacks() -> None:
    # The spec adds only the fields the service alone reads.
    assert set(Objective.model_fields) == set(spec.Objective.model_fields) - SERVICE_ONLY_FIELDS
    assert set(spec.Objective.model_fields) >= SERVICE_ONLY_FIELDS


def test_max_epochs_defaults_to_the_one_constant() -> None:
    assert Objective(metric="m", direction="minimize").max_epochs == MAX_EPOCHS_DEFAULT == 30


def test_a_granted_objective_reads_back_as_the_service_dumped_it() -> None:
    sent = spec.Objective(
        dataset="digits", metric="val_loss", direction="minimize", max_epochs=7, fixed={"batch_size": 64}
    )
    assert Objective.model_validate(sent.model_dump(mode="json")).model_dump() == sent.model_dump(
        exclude=set(SERVICE_ONLY_FIELDS)
    )


def test_a_grant_carries_the_wire_objective_without_the_service_only_fields() -> None:
    sent = spec.Objective(
        dataset="digits", metric="val_accuracy", direction="maximize", target_error=0.02, max_epochs_limit=90
    )
    grant = LeaseGrant(
        lease=LeaseOut(id="l", expires_at=datetime.now(UTC), heartbeat_interval=10.0),
        study=LeasedStudy(id=1, name="s"),
        trial=LeasedTrial(number=0, params={}, round=1),
        objective=sent,
    )
    wire = grant.model_dump(mode="json")["objective"]
    assert set(wire) == set(Objective.model_fields)
    assert Objective.model_validate(wire) == Objective.model_validate(
        sent.model_dump(exclude=set(SERVICE_ONLY_FIELDS))
    )


def test_config_values_put_fixed_then_params_then_the_objectives_own_fields() -> None:
    objective = Objective(
        metric="val_loss",
        direction="minimize",
        dataset="digits",
        max_epochs=5,
        fixed={"batch_size": 64, "lr": 0.1},
    )
    assert objective.config_values({"lr": 0.01}) == {
        "batch_size": 64,
        "lr": 0.01,
        "dataset": "digits",
        "max_epochs": 5,
    }


def test_config_values_leave_the_dataset_to_the_trainer_when_none_is_named() -> None:
    objective = Objective(trainer="python", entrypoint="m:f", metric="m", direction="maximize")
    assert objective.config_values({"x": 1}) == {"x": 1, "max_epochs": MAX_EPOCHS_DEFAULT}
