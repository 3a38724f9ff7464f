"""The Hyper-V adapter against the WinRM stand-in, run in-process on a loopback port.

No real Hyper-V host was available: the stand-in (``vqual_lab.winrm_standin``) is a
WS-Management server that answers the read cmdlets from canned objects in the shapes Microsoft
documents, and knows no cmdlet that changes state. These tests therefore show the adapter's
WinRM and PowerShell handling, its parsing of documented output shapes, its errors and its
refusal to report a state change it could not make; not Hyper-V's behaviour.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from qualification.errors import BadInputError, NotSupported, PlatformError
from vqual_lab.winrm_standin import DEFAULT_PROFILE, StandInServer, load_profile
from qualification.platforms.base import RUNNING, STOPPED, HypervisorPlatform, VmConfig
from qualification.platforms import registry
from qualification.platforms.hyperv.adapter import STAND_IN_REASON, HypervPlatform, _clean_stderr, ps_quote
from qualification.platforms.hyperv.endpoint import Endpoint, endpoint_from_vars
from qualification.platforms.hyperv.observations import probe

ADDRESS = "127.0.0.163"
USER = "vqual-test"
PASSWORD = "s3cret-Pa55-for-the-stand-in"


def _serve(server: StandInServer) -> Iterator[StandInServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInServer]:
    server = StandInServer((ADDRESS, 0), USER, PASSWORD, load_profile(DEFAULT_PROFILE))
    yield from _serve(server)


def _endpoint(server: StandInServer, **kw: Any) -> Endpoint:
    args: dict[str, Any] = {
        "host": ADDRESS,
        "username": USER,
        "password": PASSWORD,
        "port": server.server_address[1],
        "scheme": "http",
        "transport": "basic",
        **kw,
    }
    return Endpoint(**args)


def _host_vars(server: StandInServer, **kw: Any) -> dict[str, Any]:
    return {
        "vqual_winrm_host": ADDRESS,
        "vqual_winrm_port": server.server_address[1],
        "vqual_winrm_scheme": "http",
        "vqual_winrm_transport": "basic",
        "vqual_winrm_username": USER,
        "vqual_winrm_password": PASSWORD,
        **kw,
    }


# -- reads ---------------------------------------------------------------------------------


def test_adapter_meets_the_protocol_and_reads_the_documented_shapes(
    standin: StandInServer,
) -> None:
    with HypervPlatform(_endpoint(standin)) as hv:
        platform: HypervisorPlatform = hv
        assert isinstance(platform, HypervisorPlatform)
        about = hv.about()
        assert (about.platform, about.product, about.version) == (
            "hyperv",
            "Windows Server 2019 Datacenter",
            "10.0.17763",
        )
        assert PASSWORD not in repr(about) and about.endpoint.startswith("http://127.0.0.163:")
        host = hv.host()
        assert host.name == "HV1" and host.memory_mib == 256 * 1024
        assert (host.cpu.sockets, host.cpu.count) == (2, 32)
        assert host.hardware == {"vendor": "Dell Inc.", "model": "PowerEdge R650"}
        assert host.firmware["version"] == "2.19.1" and host.firmware["firmware_type"] == "Uefi"
        assert hv.host("hv1").name == "HV1"  # Windows host names compare without case
        with pytest.raises(PlatformError, match="host 'HV2' not found"):
            hv.host("HV2")
        vms = {vm.name: vm for vm in hv.vms()}
        assert vms["gxp-app-01"].power_state == RUNNING
        assert vms["master-win2019"].power_state == STOPPED
        assert (vms["gxp-db-01"].vcpus, vms["gxp-db-01"].memory_mib) == (8, 16384)
        assert vms["gxp-app-01"].firmware == "efi"  # generation 2
        assert hv.vm_exists("gxp-db-01") and not hv.vm_exists("gxp-db-02")
        assert {n.name: n.forward_mode for n in hv.networks()} == {
            "vSwitch-Production": "External",
            "vSwitch-Management": "External",
        }
        assert hv.features() == {"Hyper-V": True, "Failover-Clustering": True}


def test_host_details_name_the_enumerations(standin: StandInServer) -> None:
    with HypervPlatform(_endpoint(standin)) as hv:
        details = hv.host_details()
    assert details["vmhost"]["migration_authentication"] == "Kerberos"  # 1 in the answer
    assert details["vmhost"]["migration_performance"] == "SMB"  # 2 in the answer
    assert details["product"]["installation_type"] == "Server Core"
    assert details["vbs_status"] == 2


def test_a_cmdlet_the_endpoint_does_not_know_is_not_supported(standin: StandInServer) -> None:
    with HypervPlatform(_endpoint(standin)) as hv:
        with pytest.raises(NotSupported, match="the endpoint does not know Get-Tpm"):
            hv.read("Get-Tpm")
        with pytest.raises(BadInputError, match="not a known read-only query"):
            hv.read("Remove-VM")


# -- state changes -------------------------------------------------------------------------


def test_state_changes_are_not_executed_on_the_stand_in(standin: StandInServer) -> None:
    with HypervPlatform(_endpoint(standin)) as hv:
        operations: dict[str, Callable[[], object]] = {
            "create_vm": lambda: hv.create_vm(VmConfig(name="vq-test")),
            "power_on": lambda: hv.power_on("master-win2019"),
            "power_off": lambda: hv.power_off("gxp-app-01"),
            "snapshot_create": lambda: hv.snapshot_create("gxp-app-01", "s1"),
            "migrate": lambda: hv.migrate_vm("gxp-app-01", "HV2"),
            "enter_maintenance": lambda: hv.enter_maintenance(),
        }
        for name, operation in operations.items():
            with pytest.raises(NotSupported) as info:
                operation()
            assert info.value.operation == name
            assert info.value.reason == STAND_IN_REASON
        # Nothing changed: the VM still reads as it did.
        assert hv.vm("gxp-app-01").power_state == RUNNING
        assert not hv.vm_exists("vq-test")


def test_oq_lifecycle_is_not_executed_and_records_no_change(standin: StandInServer) -> None:
    obs, changed = probe(
        _endpoint(standin), [{"key": "oq", "method": "oq_lifecycle", "args": {}}], run_id="r-1"
    )
    oq = obs["oq"]
    assert oq["error"] is None and changed is False
    steps = oq["value"]["steps"]
    assert steps["define"]["verdict"] == "not-executed"
    assert STAND_IN_REASON in steps["define"]["reason"]
    assert all(s["verdict"] == "not-executed" for s in steps.values())
    define = oq["actions"][0]
    assert (define["before"], define["after"]) == ({"exists": False}, {"exists": False})
    checked, _ = probe(
        _endpoint(standin), [{"key": "oq", "method": "oq_lifecycle"}], check_mode=True
    )
    assert checked["oq"]["not_executed"] == "check mode"


# -- errors --------------------------------------------------------------------------------


def test_platform_errors_are_one_line_without_the_password(standin: StandInServer) -> None:
    good = _endpoint(standin)
    wrong = _endpoint(standin, password="wrong-" + PASSWORD)
    cases = {"login failed": wrong, "connect failed": _endpoint(standin, port=1)}
    for expected, ep in cases.items():
        with pytest.raises(PlatformError) as info:
            HypervPlatform(ep)
        text = info.value.one_line()
        assert expected in text and "\n" not in text, text
        assert PASSWORD not in text and ep.password not in text
        assert info.value.exit_code == 4
    with HypervPlatform(good) as hv, pytest.raises(PlatformError, match="vm 'nope' not found"):
        hv.vm("nope")
    assert PASSWORD not in repr(good) and "password=***" in repr(good)


def test_probe_answers_errors_and_not_executed(standin: StandInServer) -> None:
    requests = [
        {"key": "h", "method": "host", "args": {}},
        {"key": "t", "method": "cmdlet", "args": {"cmdlet": "Get-Tpm"}},
        {"key": "bad", "method": "cmdlet", "args": {"cmdlet": "Stop-Computer"}},
        {"key": "v", "method": "vm", "args": {"name": "no-such-vm"}},
        {"key": "l", "method": "hcl", "args": {"hcl": "hcl"}},
        {"key": "x", "method": "nonsense", "args": {}},
    ]
    obs = registry.get("hyperv").answer(requests, host_vars=_host_vars(standin))
    assert obs["h"]["value"]["name"] == "HV1" and obs["h"]["error"] is None
    assert "the endpoint does not know Get-Tpm" in obs["t"]["not_executed"]
    assert "must be one of" in obs["bad"]["error"]
    assert "vm 'no-such-vm' not found" in obs["v"]["error"]
    assert "declares no data file 'hcl'" in obs["l"]["error"]
    assert "unknown hyperv probe method" in obs["x"]["error"]
    wrong = registry.get("hyperv").answer(
        requests[:2], host_vars=_host_vars(standin, vqual_winrm_password="x" + PASSWORD)
    )
    assert all("login failed" in o["error"] for o in wrong.values())
    assert PASSWORD not in json.dumps(wrong)
    missing = registry.get("hyperv").answer(requests[:1], host_vars={"vqual_winrm_host": "h"})
    assert missing["h"]["error"] == "no vqual_winrm_username set for this target"


def test_endpoint_from_vars_defaults_to_verified_https() -> None:
    ep = endpoint_from_vars(
        {"vqual_winrm_host": "hv1", "vqual_winrm_username": "u", "vqual_winrm_password": "p"}
    )
    assert (ep.scheme, ep.port, ep.validate_certs, ep.transport) == ("https", 5986, True, "ntlm")
    lab = endpoint_from_vars(
        {
            "vqual_winrm_host": "hv1",
            "vqual_winrm_username": "u",
            "vqual_winrm_password": "p",
            "vqual_winrm_scheme": "http",
            "vqual_winrm_validate_certs": "false",
        }
    )
    assert (lab.scheme, lab.port, lab.validate_certs) == ("http", 5985, False)
    with pytest.raises(BadInputError, match="vqual_winrm_scheme must be https or http"):
        endpoint_from_vars({"vqual_winrm_scheme": "ftp"})
    with pytest.raises(BadInputError, match="vqual_winrm_port must be a port number"):
        endpoint_from_vars({"vqual_winrm_port": "x"})


# -- TLS -----------------------------------------------------------------------------------


def _self_signed(tmp: Path, address: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "winrm stand-in")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandInServer, Path]]:
    """The stand-in behind TLS with a self-signed certificate (what a lab's WinRM HTTPS
    listener with a self-made certificate looks like to a client)."""
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"), ADDRESS)
    server = StandInServer((ADDRESS, 0), USER, PASSWORD, load_profile(DEFAULT_PROFILE))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for running in _serve(server):
        yield running, cert


def test_tls_is_verified_unless_opted_out(tls_standin: tuple[StandInServer, Path]) -> None:
    server, cert = tls_standin
    https = _endpoint(server, scheme="https")
    with pytest.raises(PlatformError, match="certificate not trusted") as info:
        HypervPlatform(https)
    assert "\n" not in info.value.one_line()
    # Trusting the server's own certificate verifies for real.
    with HypervPlatform(_endpoint(server, scheme="https", ca_file=str(cert))) as hv:
        assert hv.host().name == "HV1"
    # The explicit opt-out (a lab only).
    with HypervPlatform(_endpoint(server, scheme="https", validate_certs=False)) as hv:
        assert hv.about().platform == "hyperv"


# -- helpers -------------------------------------------------------------------------------


def test_ps_quote_keeps_a_name_literal() -> None:
    assert ps_quote("a'b; Remove-VM *") == "'a''b; Remove-VM *'"


def test_clixml_error_stream_becomes_its_message() -> None:
    clixml = (
        b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        b'<S S="Error">Get-VM : Hyper-V was unable to find a virtual machine with name "x"._x000D__x000A_</S>'
        b'<S S="Error">At line:1 char:1_x000D__x000A_</S></Objs>'
    )
    text = _clean_stderr(clixml)
    assert text.startswith('Get-VM : Hyper-V was unable to find a virtual machine with name "x".')
    assert "At line:1" in text and "_x000D_" not in text
    assert _clean_stderr(b"plain error\r\n") == "plain error\r\n"


def test_hcl_is_read_again_and_must_have_the_approved_digest(
    standin: StandInServer, tmp_path: Path
) -> None:
    import hashlib
    import shutil

    hcl = tmp_path / "hcl.yaml"
    shutil.copy(Path(__file__).parents[3] / "ansible_collections" / "vqual" / "qualification" / "specs" / "data"
                / "hcl-hyperv-example.yaml", hcl)
    approved = hashlib.sha256(hcl.read_bytes()).hexdigest()
    files = [{"name": "hcl", "path": str(hcl), "digest": approved}]
    request = [{"key": "l", "method": "hcl", "args": {"hcl": "hcl"}}]
    ok = registry.get("hyperv").answer(request, host_vars=_host_vars(standin), data_files=files)["l"]
    assert ok["error"] is None and ok["value"]["digest"] == approved
    assert ok["value"]["hosts"][0]["hardware"]["model"] == "PowerEdge R650"
    hcl.write_text(hcl.read_text() + "# edited after approval\n")
    changed = registry.get("hyperv").answer(request, host_vars=_host_vars(standin), data_files=files)["l"]
    assert "changed since the run was planned" in changed["error"]
