"""The vSphere probe's glue without an endpoint: variables to an endpoint, one-line errors that
never show the password, the HCL read again against its planned digest."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from qualification.platforms import registry
from qualification.platforms.vsphere.endpoint import Endpoint, endpoint_from_vars

REPO = Path(__file__).resolve().parents[3]
HCL_EXAMPLE = REPO / "ansible_collections" / "vqual" / "qualification" / "specs" / "data" / "hcl-example.yaml"


def test_endpoint_from_vars_and_its_repr_hides_the_password() -> None:
    ep = endpoint_from_vars({
        "vqual_vsphere_host": "vc.example.org", "vqual_vsphere_port": "8443",
        "vqual_vsphere_username": "svc", "vqual_vsphere_password": "s3cret-Pw",
        "vqual_vsphere_validate_certs": "false", "vqual_vsphere_cluster": "C1",
    })
    assert ep == Endpoint("vc.example.org", "svc", "s3cret-Pw", port=8443, validate_certs=False,
                          cluster="C1")
    assert "s3cret-Pw" not in repr(ep) and "s3cret-Pw" not in str(ep)
    # TLS verification is the default.
    assert endpoint_from_vars({"vqual_vsphere_host": "h", "vqual_vsphere_username": "u",
                               "vqual_vsphere_password": "p"}).validate_certs is True


@pytest.mark.parametrize(("host_vars", "message"), [
    ({}, "no vqual_vsphere_host set for this target"),
    ({"vqual_vsphere_host": "h", "vqual_vsphere_username": "u"},
     "no vqual_vsphere_password set for this target"),
    ({"vqual_vsphere_host": "h", "vqual_vsphere_username": "u", "vqual_vsphere_password": "p",
      "vqual_vsphere_port": "https"}, "vqual_vsphere_port must be a port number"),
])
def test_missing_variables_are_errors_naming_them(host_vars: dict[str, Any], message: str) -> None:
    obs = registry.get("vsphere").answer([{"key": "k", "method": "about", "args": {}}], host_vars=host_vars)
    assert obs["k"]["error"].startswith(message)


def test_an_hcl_changed_since_planning_is_an_error(tmp_path: Path) -> None:
    hcl = tmp_path / "hcl.yaml"
    hcl.write_bytes(HCL_EXAMPLE.read_bytes())
    planned = hashlib.sha256(hcl.read_bytes()).hexdigest()
    hcl.write_text(hcl.read_text() + "\n# edited after approval\n")
    host_vars = {"vqual_vsphere_host": "127.0.0.1", "vqual_vsphere_port": 9,
                 "vqual_vsphere_username": "u", "vqual_vsphere_password": "p"}
    obs = registry.get("vsphere").answer([{"key": "k", "method": "hcl", "args": {"hcl": "hcl"}}],
                         host_vars=host_vars,
                         data_files=[{"name": "hcl", "path": str(hcl), "digest": planned}])
    assert "changed since the run was planned" in obs["k"]["error"]


def test_unreachable_endpoint_is_an_error_for_every_request() -> None:
    host_vars = {"vqual_vsphere_host": "127.0.0.1", "vqual_vsphere_port": 9,
                 "vqual_vsphere_username": "u", "vqual_vsphere_password": "pw-never-shown"}
    requests = [{"key": "a", "method": "about", "args": {}},
                {"key": "b", "method": "hosts", "args": {}}]
    obs = registry.get("vsphere").answer(copy.deepcopy(requests), host_vars=host_vars)
    for key in ("a", "b"):
        assert obs[key]["error"].startswith("https://127.0.0.1:9/sdk: connect failed")
        assert "pw-never-shown" not in obs[key]["error"]
