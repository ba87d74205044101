import json

import pytest

from worker.supervisor import (
    SLOT_ENV,
    DeviceSpecError,
    Supervisor,
    SupervisorOptions,
    discover_devices,
    plan_slots,
)


def test_named_devices_are_taken_as_given_and_nonsense_is_refused() -> None:
    assert discover_devices("cpu") == ["cpu"]
    assert discover_devices("cuda:0, cuda:3") == ["cuda:0", "cuda:3"]
    for bad in ("gpu", "cuda:x", "cuda:0,cpu", ""):
        with pytest.raises(DeviceSpecError):
            discover_devices(bad)


def test_auto_falls_back_to_the_cpu_without_cuda() -> None:
    import torch

    expected = (
        [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else ["cpu"]
    )
    assert discover_devices("auto") == expected


def test_each_device_gets_n_slots_and_each_slot_sees_only_its_gpu() -> None:
    slots = plan_slots(["cuda:0", "cuda:1"], 2)
    assert [s.index for s in slots] == [0, 1, 2, 3]
    assert [s.visible_devices for s in slots] == ["0", "0", "1", "1"]
    assert {s.local_device for s in slots} == {"cuda:0"}
    cpu = plan_slots(["cpu"], 3)
    assert [(s.visible_devices, s.local_device) for s in cpu] == [("", "cpu")] * 3
    with pytest.raises(ValueError):
        plan_slots(["cpu"], 0)


def test_a_slot_child_gets_its_gpu_its_worker_id_and_the_token_out_of_argv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HONE_TOKEN", "x" * 20)
    options = SupervisorOptions(api_url="http://api", token="t" * 20, devices=["cuda:2"], trials_per_device=2)
    supervisor = Supervisor(options)
    env = supervisor.child_env(supervisor.slots[1])
    assert env["CUDA_VISIBLE_DEVICES"] == "2"
    assert "HONE_TOKEN" not in env
    slot = json.loads(env[SLOT_ENV])
    assert slot["device"] == "cuda:0" and slot["devices"] == ["cuda:2"]
    assert slot["token"] == "t" * 20 and slot["worker_id"].endswith("-1")
