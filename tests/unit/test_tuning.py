"""The tuned topology's Prefect settings: none by default, Redis for every shared piece above 1."""

from __future__ import annotations

import pytest

from taskscheduler.tuning import TuningSettings


def test_defaults_leave_prefect_alone() -> None:
    settings = TuningSettings()
    assert not settings.active
    assert settings.server_env() == {} and settings.database_settings() == {}


def test_several_api_processes_move_shared_state_to_redis() -> None:
    env = TuningSettings(api_workers=2, redis_url="redis://127.0.0.1:6379/5").server_env()
    for key in (
        "PREFECT_SERVER_EVENTS_MESSAGING_BROKER",
        "PREFECT_SERVER_EVENTS_MESSAGING_CACHE",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
    ):
        assert env[key].startswith("prefect_redis.")
    assert env["PREFECT_SERVER_DOCKET_URL"] == "redis://127.0.0.1:6379/5"
    assert env["PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME"] == "PT300S"


def test_one_tuned_process_needs_no_redis() -> None:
    env = TuningSettings(tuned=True).server_env()
    assert "PREFECT_SERVER_DOCKET_URL" not in env
    assert env["PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE"] == "10"
    assert TuningSettings(tuned=True).database_settings() == {"synchronous_commit": "off"}


def test_every_setting_is_described() -> None:
    assert all(f.description for f in TuningSettings.model_fields.values())


def test_the_event_batch_sizes_reach_prefects_own_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """A contract with Prefect: each event consumer reads the batch size we set for it."""
    from prefect.settings import Settings

    tuned = TuningSettings(tuned=True, events_read_batch=37, events_write_batch=211)
    for name, value in tuned.server_env().items():
        monkeypatch.setenv(name, value)
    services = Settings().server.services
    for service in (services.event_persister, services.triggers, services.task_run_recorder):
        assert service.read_batch_size == 37
    assert services.event_persister.batch_size == 211


def test_prefects_event_consumers_take_their_read_batch_size_from_settings() -> None:
    """The consumers we size are the ones Prefect builds with ``read_batch_size`` from settings;
    an upgrade that reads it elsewhere (or stops reading it) fails here."""
    import inspect

    from prefect.server.events.services import event_persister, triggers
    from prefect.server.services import task_run_recorder

    for module in (event_persister, triggers, task_run_recorder):
        source = inspect.getsource(module)
        assert "read_batch_size=self.service_settings().read_batch_size" in source, module


def test_tuned_fast_workers_keep_more_warm_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TuningSettings().fast_lane_env() == {}  # untuned: the worker's own default
    assert TuningSettings(tuned=True).fast_lane_env() == {"TASKS_FAST_PROCESSES": "16"}
    monkeypatch.setenv("TASKS_FAST_PROCESSES", "8")  # the worker's own setting wins
    assert TuningSettings(api_workers=2).fast_lane_env() == {"TASKS_FAST_PROCESSES": "8"}
