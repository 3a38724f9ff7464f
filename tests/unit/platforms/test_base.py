"""The platform contract: facts as JSON, placement, endpoint redaction, NotSupported."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from qualification.errors import EXIT_PLATFORM, NotSupported, PlatformError
from qualification.platforms.base import (
    CpuFacts,
    EventFacts,
    HostFacts,
    ObservationTable,
    Placement,
    VmFacts,
    answer_loop,
    one_line,
    probe_observation,
    redact_endpoint,
    secrets_of,
)


def _host(name: str = "kvm1", uuid: str | None = "4c4c4544-0000") -> HostFacts:
    cpu = CpuFacts("Xeon", "x86_64", "Intel", 8, 2000, 1, 4, 2, ("vmx",))
    return HostFacts(name=name, uuid=uuid, cpu=cpu, memory_mib=1024, numa_nodes=1)


def test_host_facts_to_json_is_plain_json() -> None:
    data = _host().to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["cpu"]["features"] == ["vmx"]  # tuples become lists
    assert data["in_maintenance"] is False


def test_vm_facts_to_json_carries_placement() -> None:
    vm = VmFacts(
        name="a",
        uuid="u",
        host="kvm1",
        power_state="running",
        persistent=True,
        autostart=False,
        vcpus=1,
        memory_mib=64,
        max_memory_mib=64,
        placement=Placement(("kvm1", "kvm2")),
    )
    assert vm.to_json()["placement"] == {"allowed_hosts": ["kvm1", "kvm2"]}


def test_event_facts_time_is_iso_text() -> None:
    event = EventFacts(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "started", "vm1", "started")
    assert event.to_json()["time"] == "2026-01-02T03:04:05+00:00"


@pytest.mark.parametrize(
    ("allowed", "host", "ok"),
    [
        ((), _host(), True),
        (("kvm1",), _host(), True),
        (("4c4c4544-0000",), _host(), True),
        (("kvm2",), _host(), False),
        (("kvm2",), _host(uuid=None), False),
    ],
)
def test_placement_allows_by_name_or_uuid(
    allowed: tuple[str, ...], host: HostFacts, ok: bool
) -> None:
    assert Placement(allowed).allows(host) is ok


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("test:///default", "test:///default"),
        ("qemu+ssh://root@kvm1/system", "qemu+ssh://root@kvm1/system"),
        ("qemu+tcp://bob:s3cret@kvm1/system", "qemu+tcp://bob:***@kvm1/system"),
        ("qemu+tcp://bob:p@ss@kvm1/system", "qemu+tcp://bob:***@kvm1/system"),
        (
            "qemu+tls://kvm1/system?password=x&pkipath=/p",
            "qemu+tls://kvm1/system?password=***&pkipath=/p",
        ),
    ],
)
def test_redact_endpoint_removes_passwords_only(uri: str, shown: str) -> None:
    assert redact_endpoint(uri) == shown


def test_secrets_are_scrubbed_from_platform_messages() -> None:
    uri = "qemu+tcp://bob:s3cret@kvm1/system?token=abc"
    assert set(secrets_of(uri)) == {"s3cret", "abc"}
    text = one_line("cannot connect to\n qemu+tcp://bob:s3cret@kvm1 (token abc)", secrets_of(uri))
    assert text == "cannot connect to qemu+tcp://bob:***@kvm1 (token ***)"


def test_not_supported_is_a_platform_error_with_reason() -> None:
    exc = NotSupported("migrate vm1", "the test driver\ncannot migrate", where="test:///default")
    assert isinstance(exc, PlatformError)
    assert exc.exit_code == EXIT_PLATFORM
    assert exc.reason == "the test driver cannot migrate"
    assert (
        exc.one_line()
        == "test:///default: migrate vm1 not supported: the test driver cannot migrate"
    )


class _Session:
    secrets: tuple[str, ...] = ()

    def close(self) -> None:
        pass


def test_answer_loop_gives_each_observation_its_own_time() -> None:
    took: dict[str, float] = {}

    def slow(_session: _Session, _args: Mapping[str, Any]) -> dict[str, Any]:
        started, data = time.perf_counter(), b"x" * 4096
        while time.perf_counter() - started < 0.2:  # work, as a platform call would
            data = hashlib.sha256(data).digest() * 128
        took["slow"] = time.perf_counter() - started
        return probe_observation(value=1, method="t.slow")

    def fast(_session: _Session, _args: Mapping[str, Any]) -> dict[str, Any]:
        return probe_observation(value=2, method="t.fast")

    table: ObservationTable[_Session] = ObservationTable("t", {"slow": slow, "fast": fast}, {})
    requests = [{"key": "a", "method": "fast"}, {"key": "b", "method": "slow"},
                {"key": "c", "method": "nope"}]
    observations, _ = answer_loop(table, requests, lambda _write: _Session())
    assert observations["b"]["seconds"] >= took["slow"] >= 0.2
    assert observations["a"]["seconds"] < took["slow"] / 2
    # An unknown method is answered too, with the (short) time it took to refuse it.
    assert observations["c"]["error"] and observations["c"]["seconds"] < took["slow"] / 2
