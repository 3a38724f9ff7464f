"""The platform registry: plug-ins found through entry points, the built-in three and one a
test registers with nothing but a ``*.dist-info`` directory on ``sys.path``."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qualification import checks
from qualification.checks import registry as check_registry
from qualification.checks.base import Observation
from qualification.errors import BadInputError, NotSupported, PlatformError
from qualification.execution.probes import run_controller_probe
from qualification.platforms import registry
from qualification.platforms.base import (
    BadArgs,
    ObservationTable,
    OqContext,
    answer_loop,
    probe_observation,
)
from qualification.spec import spec_schema, target_kinds

PLUGIN_SOURCE = '''
from qualification.checks.base import ProbeRequest
from qualification.platforms.base import ObservationTable, answer_loop, probe_observation
from qualification.platforms.registry import PlatformPlugin
from qualification.errors import BadInputError


class PingCheck:
    name = "toy_ping"
    description = "the toy endpoint answers a ping"

    def validate_params(self, params):
        return None

    def request(self, params):
        return ProbeRequest("toy", "ping", {})

    def extract(self, value, params):
        return value


class _Session:
    secrets = ()

    def __init__(self, where):
        self.where = where

    def close(self):
        pass


TABLE = ObservationTable(
    probe="toy",
    iq={"ping": lambda s, a: probe_observation(value="pong", method=f"ping {s.where}")},
    oq={},
)


class ToyPlugin(PlatformPlugin):
    name = "toy"
    probe = "toy"
    target_kinds = ("toy_host",)
    endpoint_vars = ("vqual_toy_url",)
    secret_vars = ("vqual_toy_secret",)

    def check_types(self):
        return (PingCheck(),)

    def endpoint(self, host_vars):
        if not host_vars.get("vqual_toy_url"):
            raise BadInputError("no vqual_toy_url set for this target")
        return host_vars["vqual_toy_url"]

    def answer(self, requests, *, host_vars, run_id="", check_mode=False, data_files=()):
        where = self.endpoint(host_vars)
        return answer_loop(TABLE, requests, lambda write: _Session(where))[0]
'''


def _register(root: Path, name: str, value: str) -> None:
    info = root / f"{name}_plugin-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[vqual.platforms]\n{name} = {value}\n")


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[Path]:
    """A platform ``toy`` registered from this test alone: a module and a dist-info."""
    (tmp_path / "toy_platform.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    _register(tmp_path, "toy", "toy_platform:ToyPlugin")
    sys.path.insert(0, str(tmp_path))
    registry.clear_cache()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("toy_platform", None)
        registry.clear_cache()
        # The library has no unregistering (a second registration of a name is a bug); the
        # toy's check type must not outlive this test.
        check_registry._REGISTRY.pop("toy_ping", None)


def test_the_three_platforms_are_registered_in_their_order() -> None:
    assert [p.name for p in registry.plugins()] == ["libvirt", "vsphere", "hyperv"]
    assert registry.names() == ("hyperv", "libvirt", "vsphere")
    assert {p.name: p.probe for p in registry.plugins()} == {
        "libvirt": "libvirt", "vsphere": "vsphere", "hyperv": "hyperv"
    }
    assert target_kinds() == ("linux_host", "libvirt_hypervisor", "kvm_host", "vcenter", "esxi",
                              "hyperv_host", "master_vm", "clone")
    assert {"vqual_vsphere_password", "vqual_winrm_password"} <= registry.secret_vars()


def test_an_unknown_platform_is_one_line_naming_the_known() -> None:
    with pytest.raises(registry.UnknownPlatform) as err:
        registry.get("xen")
    assert err.value.one_line() == "unknown platform 'xen' (known: hyperv, libvirt, vsphere)"
    assert isinstance(err.value, BadInputError)
    with pytest.raises(registry.UnknownPlatform, match="unknown platform probe 'xen'"):
        registry.for_probe("xen")
    obs = run_controller_probe("xen", [{"key": "k", "method": "m"}], host_vars={}, run_id="r",
                               check_mode=False)
    assert obs["k"]["error"].startswith("unknown platform probe 'xen' (known: ")


def test_a_dist_info_on_sys_path_registers_a_platform(toy: Path) -> None:
    plugin = registry.get("toy")
    assert [p.name for p in registry.plugins()][-1] == "toy"  # order 100, after the three
    assert "toy_host" in target_kinds() and "toy_host" in spec_schema()["$defs"]["targetKind"]["enum"]
    assert "vqual_toy_secret" in registry.secret_vars()
    obs = run_controller_probe("toy", [{"key": "k", "method": "ping", "args": {}}],
                               host_vars={"vqual_toy_url": "toy://here"}, run_id="r",
                               check_mode=False)
    assert obs["k"]["value"] == "pong" and obs["k"]["method"] == "ping toy://here"
    # Its own check type joined the check library when the registry loaded.
    ping = checks.get_check("toy_ping")
    assert ping.request({}).probe == "toy"
    outcome = checks.evaluate(ping, Observation.from_json(obs["k"]), {},
                              {"op": "equals", "value": "pong"})
    assert outcome.verdict == "pass"
    # Hooks it does not declare say so; their callers record not-executed with the reason.
    with pytest.raises(NotSupported, match="platform toy has no cleanup hook"):
        plugin.cleanup({}, "run")
    with pytest.raises(NotSupported, match="platform toy has no connect hook"):
        plugin.connect("toy://here")
    assert plugin.patch_setup({}, "c", None, None) is None


def test_an_entry_point_that_is_no_plugin_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad_platform.py").write_text("PLUGIN = object()\nNAMED = None\n")
    _register(tmp_path, "bad", "bad_platform:PLUGIN")
    sys.path.insert(0, str(tmp_path))
    registry.clear_cache()
    try:
        with pytest.raises(BadInputError, match="bad = bad_platform:PLUGIN .* is not a PlatformPlugin"):
            registry.plugins()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("bad_platform", None)
        registry.clear_cache()


# -- the one request loop ---------------------------------------------------------------------


class _Session:
    secrets = ("s3cret",)

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class VendorError(Exception):
    pass


def _iq_ok(session: _Session, args: Any) -> dict[str, Any]:
    return probe_observation(value=dict(args), method="ok")


def _iq_fails(session: _Session, args: Any) -> dict[str, Any]:
    raise PlatformError("read failed: password s3cret refused")


def _iq_vendor(session: _Session, args: Any) -> dict[str, Any]:
    raise VendorError("socket s3cret\nclosed")


def _iq_unsupported(session: _Session, args: Any) -> dict[str, Any]:
    raise NotSupported("events", "not modelled")


def _oq(session: _Session, ctx: OqContext, args: Any) -> dict[str, Any]:
    return probe_observation(value=ctx.position, method="oq", actions=[{"name": "x"}])


TABLE: ObservationTable[_Session] = ObservationTable(
    probe="demo",
    iq={"ok": _iq_ok, "fails": _iq_fails, "vendor": _iq_vendor, "unsupported": _iq_unsupported},
    oq={"oq": _oq},
    vendor_errors=(VendorError,),
)


def req(key: str, method: str, **args: Any) -> dict[str, Any]:
    return {"key": key, "method": method, "args": args}


def test_the_loop_answers_each_request_and_scrubs_secrets() -> None:
    sessions: list[tuple[bool, _Session]] = []

    def open_session(write: bool) -> _Session:
        sessions.append((write, _Session()))
        return sessions[-1][1]

    obs, changed = answer_loop(
        TABLE,
        [req("a", "ok", x=1), req("b", "fails"), req("c", "vendor"), req("d", "unsupported"),
         req("e", "nope"), req("f", "oq"), {"key": "g", "method": "ok", "args": [1]}],
        open_session,
    )
    assert [w for w, _ in sessions] == [True] and sessions[0][1].closed
    assert obs["a"]["value"] == {"x": 1}
    assert obs["b"]["error"] == "read failed: password *** refused"
    assert obs["c"]["error"] == "vendor failed: socket *** closed"
    assert obs["d"]["not_executed"] == "events not supported: not modelled"
    assert obs["e"]["error"] == ("unknown demo probe method 'nope' "
                                 "(known: ok, fails, vendor, unsupported, oq)")
    assert obs["f"]["value"] == 6 and changed is True
    assert obs["g"]["error"] == "ok: args must be a mapping"


def test_the_loop_in_check_mode_and_without_a_connection() -> None:
    obs, changed = answer_loop(TABLE, [req("a", "oq"), req("b", "ok")], lambda w: _Session(),
                               check_mode=True)
    assert obs["a"]["not_executed"] == "check mode" and changed is False

    def refuse(write: bool) -> _Session:
        raise PlatformError("login failed for s3cret", where="demo://x")

    obs, _ = answer_loop(TABLE, [req("a", "ok"), req("b", "nope")], refuse, secrets=("s3cret",))
    assert obs["a"]["error"] == "demo://x: login failed for ***"
    assert obs["b"]["error"].startswith("unknown demo probe method")
    with pytest.raises(BadArgs, match="has no key"):
        answer_loop(TABLE, [{"method": "ok"}], lambda w: _Session())


def test_loading_the_plugins_imports_no_vendor_library() -> None:
    # A controller without pyVmomi or pywinrm still qualifies the other platforms: the hooks
    # import the adapters when they run, the registry never does.
    import subprocess

    code = (
        "import sys\n"
        "from qualification.platforms import registry\n"
        "registry.plugins(); registry.target_kinds()\n"
        "print(sorted(m for m in ('libvirt', 'pyVmomi', 'winrm') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_a_hook_a_platform_lacks_is_not_executed_with_its_reason(tmp_path: Path) -> None:
    class Bare(registry.PlatformPlugin):
        name = "bare"

    obs = Bare().answer([{"key": "k", "method": "m"}], host_vars={})
    assert obs["k"]["not_executed"] == "probe not supported: platform bare has no probe hook"
    assert obs["k"]["error"] is None
    # vqual cleanup: Hyper-V has no cleanup; its targets are listed with the reason, and
    # nothing is connected to.
    from qualification.cleanup import cleanup

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all: {hosts: {hv1: {ansible_connection: local, vqual_winrm_host: 127.0.0.9}}}\n"
    )
    result = cleanup(inventory, "20261206T000000Z-abcdef")
    assert result.ok and result.removed == []
    assert result.to_json()["targets"] == [{
        "endpoint": "hyperv", "hosts": ["hv1"], "removed": [], "files_left": [], "errors": [],
        "not_executed": "the Hyper-V adapter ran only against a stand-in that creates no VM",
    }]


def test_vqual_patch_asks_each_plugin_for_the_cluster() -> None:
    # No connection is made: the setups only read the inventory.
    from qualification.cli.patch import platform_and_executor

    vc = {"vqual_vsphere_host": "127.0.0.9", "vqual_vsphere_username": "u",
          "vqual_vsphere_password": "p", "vqual_vsphere_cluster": "C1"}
    kvm = {"vqual_cluster": "K1", "vqual_libvirt_uri": "test:///default"}
    _factory, executor, limit = platform_and_executor({"vc": vc, "kvm1": kvm}, "C1", None)
    assert (executor.name, limit) == ("vsphere-standin", "vc")
    _factory, executor, limit = platform_and_executor({"vc": vc, "kvm1": kvm}, "K1", None)
    assert (executor.name, limit) == ("kvm-apt", None)
    with pytest.raises(BadInputError, match="several vSphere endpoints manage cluster C1"):
        platform_and_executor({"vc": vc, "vc2": vc}, "C1", None)
    with pytest.raises(BadInputError, match="vqual_patch_executor 'x' is not known"):
        platform_and_executor({"vc": {**vc, "vqual_patch_executor": "x"}}, "C1", None)
    with pytest.raises(BadInputError, match="no platform endpoint manages cluster 'Z9'"):
        platform_and_executor({"vc": vc, "kvm1": kvm}, "Z9", None)
    with pytest.raises(BadInputError, match="inventory host kvm1 is no platform endpoint of"):
        platform_and_executor({"vc": vc, "kvm1": kvm}, "K1", "kvm1")
