"""Hostile input: malformed specs and lease calls each get a clear 4xx, never a 5xx.

Every case runs on SQLite and PostgreSQL: a value that one driver swallows can make the
other raise (integers past 64 bits, NUL characters, deep JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from service.body_limit import MAX_BODY_BYTES, TOO_LARGE
from service.tables import Trial, utcnow
from tests.api.conftest import Api, spec

HUGE = 10**30
TEN_MB = 10 * 1024 * 1024
WORKER = {"worker": "host-1-0", "devices": ["cpu"]}


def _lr(**changes: Any) -> dict[str, Any]:
    return {"space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log", **changes}}}


# (case, raw JSON body of POST /studies, statuses accepted)
BAD_SPECS: list[tuple[str, str, set[int]]] = [
    ("name is a number", json.dumps(spec(name=123)), {422}),
    ("rounds is a string", json.dumps(spec(rounds="many")), {422}),
    ("space is a list", json.dumps(spec(space=[1, 2])), {422}),
    ("objective is null", json.dumps(spec(objective=None)), {422}),
    ("seed is a string", json.dumps(spec(sampler={"type": "random", "seed": "x"})), {422}),
    ("body is a list", "[1, 2, 3]", {422}),
    ("body is a string", '"study"', {422}),
    ("body is not json", "{name: digits", {422}),
    ("body is empty", "", {422}),
    ("trials past 64 bits", json.dumps(spec(rounds=[{"trials": HUGE}])), {422}),
    ("max_concurrent past 64 bits", json.dumps(spec(max_concurrent=HUGE)), {422}),
    ("seed past 64 bits", json.dumps(spec(sampler={"type": "random", "seed": HUGE})), {422}),
    (
        "bounds at the float limit",
        json.dumps(spec(**_lr(scale="linear", low=-1.7e308, high=1.7e308))),
        {201, 422},
    ),
    (
        "a step over a range past the float limit",
        json.dumps(spec(space={"lr": {"type": "float", "low": -1.7e308, "high": 1.7e308, "step": 1.0}})),
        {422},
    ),
    (
        "a vanishing step",
        json.dumps(spec(space={"lr": {"type": "float", "low": 1e-300, "high": 1e300, "step": 1e-300}})),
        {422},
    ),
    ("low is NaN", json.dumps(spec(**_lr(low=float("nan")))), {422}),
    ("high is Infinity", json.dumps(spec(**_lr(high=float("inf")))), {422}),
    ("high overflows to inf", json.dumps(spec(**_lr())).replace('"high": 1.0', '"high": 1e999'), {422}),
    (
        "a NaN choice",
        json.dumps(spec(space={"optimizer": {"type": "categorical", "choices": ["adam", float("nan")]}})),
        {422},
    ),
    ("a NUL in the name", json.dumps(spec(name="digits\u0000")), {422}),
    ("a right-to-left override in the name", json.dumps(spec(name="evil\u202etxt")), {422}),
    ("a lone surrogate in the name", '{"name": "\\ud800"}', {422}),
    (
        "a NUL in a parameter name",
        json.dumps(spec(space={"l\u0000r": {"type": "float", "low": 0.1, "high": 1}})),
        {422},
    ),
    (
        "a NUL in a choice",
        json.dumps(spec(space={"optimizer": {"type": "categorical", "choices": ["adam", "s\u0000gd"]}})),
        {201, 422},
    ),
    ("a 10 MB name", json.dumps(spec(name="x" * TEN_MB)), {413, 422}),
    (
        "10 MB of choices",
        json.dumps(spec(space={"optimizer": {"type": "categorical", "choices": ["adam"] * (TEN_MB // 8)}})),
        {413, 422},
    ),
    ("JSON nested 100000 deep", '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}", {413, 422}),
]


def post_raw(api: Api, path: str, body: str, role: str = "admin") -> Any:
    headers = {**api.headers(role), "Content-Type": "application/json"}  # type: ignore[arg-type]
    return api.client.post(f"/api/v1{path}", headers=headers, content=body.encode("utf-8", "surrogatepass"))


def test_each_malformed_spec_gets_a_clear_4xx(api: Api) -> None:
    failures = []
    for case, body, statuses in BAD_SPECS:
        response = post_raw(api, "/studies", body)
        if response.status_code not in statuses:
            failures.append(f"{case}: {response.status_code} {response.text[:300]}")
        elif response.status_code == 422 and not response.json()["detail"]:
            failures.append(f"{case}: a 422 without detail")
        elif len(response.content) > 100_000:
            failures.append(f"{case}: the error echoes {len(response.content)} bytes back")
    assert not failures, "\n".join(failures)


def test_unicode_names_are_welcome(api: Api) -> None:
    study = api.create_study(name="学習率の探索 ✓ — Ünïcödé")
    assert api.get(f"/studies/{study['id']}").json()["name"] == "学習率の探索 ✓ — Ünïcödé"


HOSTILE_PATHS = [
    f"/studies/{HUGE}",
    f"/studies/{2**63}",
    "/studies/-1",
    "/studies/abc",
    f"/studies/1/trials/{HUGE}",
    f"/studies/1/trials?limit={HUGE}",
    f"/studies/1/trials?round={HUGE}",
    "/studies/1/trials?cursor=%00%ff",
    f"/studies?offset={HUGE}",
    "/studies?status=%00",
]


def test_hostile_paths_and_queries_get_a_clear_4xx(api: Api) -> None:
    api.create_study()
    failures = []
    for path in HOSTILE_PATHS:
        response = api.get(path)
        if not 400 <= response.status_code < 500:
            failures.append(f"{path}: {response.status_code} {response.text[:300]}")
    assert not failures, "\n".join(failures)


def _granted(api: Api, worker: str = "host-1-0") -> dict[str, Any]:
    response = api.post("/leases", role="worker", json={**WORKER, "worker": worker})
    assert response.status_code == 201, response.text
    grant: dict[str, Any] = response.json()
    return grant


# (case, action, raw JSON body, statuses accepted); "{lease}" is a live lease's id
BAD_LEASE_CALLS: list[tuple[str, str, str, set[int]]] = [
    ("value is a string", "{lease}/complete", '{"value": "low"}', {422}),
    ("value is NaN", "{lease}/complete", '{"value": NaN}', {422}),
    ("value is Infinity", "{lease}/complete", '{"value": Infinity}', {422}),
    ("value overflows to inf", "{lease}/complete", '{"value": 1e999}', {422}),
    ("value past 64 bits", "{lease}/complete", f'{{"value": {10**400}}}', {200, 422}),
    ("metrics is a list", "{lease}/complete", '{"value": 1, "metrics": [1]}', {422}),
    (
        "10000 metrics",
        "{lease}/complete",
        json.dumps({"value": 1, "metrics": {f"m{i}": 1 for i in range(10_000)}}),
        {422},
    ),
    ("a NaN metric", "{lease}/complete", '{"value": 1, "metrics": {"acc": NaN}}', {200, 422}),
    ("step is negative", "{lease}/report", '{"step": -1, "value": 1}', {422}),
    ("step past 64 bits", "{lease}/report", f'{{"step": {HUGE}, "value": 1}}', {422}),
    ("report value NaN", "{lease}/report", '{"step": 1, "value": NaN}', {422}),
    ("a 10 MB reason", "{lease}/fail", json.dumps({"reason": "x" * TEN_MB}), {413, 422}),
    ("a NUL in the reason", "{lease}/fail", json.dumps({"reason": "bad\u0000byte"}), {200, 422}),
    ("retry is a string", "{lease}/fail", '{"reason": "x", "retry": "perhaps"}', {422}),
    ("unknown lease", "0123456789abcdef0123456789abcdef/complete", '{"value": 1}', {404}),
    ("a 10 KB lease id", "x" * 10_000 + "/heartbeat", "", {404, 414, 422}),
    ("a NUL in the lease id", "%00/heartbeat", "", {404, 422}),
    ("lease: worker is empty", "", '{"worker": "", "devices": []}', {422}),
    ("lease: devices is a string", "", '{"worker": "w", "devices": "cpu"}', {422}),
    ("lease: a study id that is a boolean", "", '{"worker": "w", "studies": [true]}', {422}),
    ("lease: a study id past 64 bits", "", f'{{"worker": "w", "studies": [{HUGE}]}}', {204, 422}),
    ("lease: a NUL in the worker id", "", json.dumps({"worker": "w\u0000"}), {201, 422}),
    ("lease: a 10 MB worker id", "", json.dumps({"worker": "w" * TEN_MB}), {413, 422}),
]


def test_each_malformed_lease_call_gets_a_clear_4xx(api: Api) -> None:
    api.create_study(rounds=[{"trials": 100}])
    failures = []
    for case, action, body, statuses in BAD_LEASE_CALLS:
        lease_id = _granted(api, worker="other")["lease"]["id"]
        path = "/leases" + ("/" + action.replace("{lease}", lease_id) if action else "")
        response = post_raw(api, path, body, role="worker")
        if response.status_code not in statuses:
            failures.append(f"{case}: {response.status_code} {response.text[:300]}")
        elif len(response.content) > 100_000:
            failures.append(f"{case}: the error echoes {len(response.content)} bytes back")
    assert not failures, "\n".join(failures)


def test_a_lease_now_held_by_another_worker_refuses_the_first_worker_with_409(
    db_url: str, make_api: Callable[..., Api]
) -> None:
    api = make_api(db_url, grace_period=60)
    api.create_study(rounds=[{"trials": 1}])
    first = _granted(api, worker="first")
    with api.db.transaction() as session:  # the first worker went silent past its grace period
        past = utcnow() - timedelta(seconds=1)
        session.execute(
            update(Trial).where(Trial.lease_id == first["lease"]["id"]).values(lease_expires_at=past)
        )
    from tests.api.test_leases import reap

    assert reap(api) == 1
    second = _granted(api, worker="second")
    assert second["trial"]["params"] == first["trial"]["params"]
    old = first["lease"]["id"]
    for action, body in [
        ("heartbeat", None),
        ("report", {"step": 1, "value": 0.5}),
        ("complete", {"value": 0.5}),
    ]:
        response = api.post(f"/leases/{old}/{action}", role="worker", json=body)
        assert response.status_code == 409, (action, response.text)
        assert "lease" in response.json()["detail"]
    done = api.post(f"/leases/{second['lease']['id']}/complete", role="worker", json={"value": 0.25})
    assert done.status_code == 200 and done.json()["duplicate"] is False


def test_a_body_over_the_limit_is_a_413_in_hones_json_on_every_route_that_takes_one(api: Api) -> None:
    too_big = json.dumps(spec(name="x" * (MAX_BODY_BYTES + 1)))
    refused = post_raw(api, "/studies", too_big)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {"detail": TOO_LARGE}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what is read
        body = too_big.encode()
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    chunked = api.client.post(
        "/api/v1/studies", headers={**api.headers(), "Content-Type": "application/json"}, content=chunks()
    )
    assert (chunked.status_code, chunked.json()) == (413, {"detail": TOO_LARGE})
    assert api.get("/studies").json() == []  # nothing was made

    operations = api.client.get("/openapi.json").json()["paths"]
    with_body = [
        (method, path)
        for path, ops in operations.items()
        for method, op in ops.items()
        if "requestBody" in op
    ]
    assert with_body
    for method, path in with_body:
        assert "413" in operations[path][method]["responses"], (method, path)
