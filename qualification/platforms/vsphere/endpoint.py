"""A vSphere endpoint (vCenter or ESXi) and how a target's host variables name it.

Host variables: ``vqual_vsphere_host``, ``vqual_vsphere_username``, ``vqual_vsphere_password``
(a secret), ``vqual_vsphere_port`` (443), ``vqual_vsphere_validate_certs`` (true),
``vqual_vsphere_ca_file``, ``vqual_vsphere_datacenter``, ``vqual_vsphere_cluster``. No vendor
library here: the registry reads endpoints without pyVmomi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qualification.errors import BadInputError

#: The variables of a vSphere target, in the order the docs list them.
VSPHERE_VARS = (
    "vqual_vsphere_host",
    "vqual_vsphere_port",
    "vqual_vsphere_username",
    "vqual_vsphere_password",
    "vqual_vsphere_validate_certs",
    "vqual_vsphere_ca_file",
    "vqual_vsphere_datacenter",
    "vqual_vsphere_cluster",
)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect. ``password`` never appears in ``repr`` or messages."""

    host: str
    username: str
    password: str
    port: int = 443
    validate_certs: bool = True
    ca_file: str | None = None
    datacenter: str | None = None
    cluster: str | None = None
    timeout_s: float = 30.0

    def __repr__(self) -> str:
        return f"Endpoint(host={self.host!r}, port={self.port}, username={self.username!r}, password=***)"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/sdk"


def endpoint_from_vars(host_vars: Mapping[str, Any]) -> Endpoint:
    """The endpoint of a target from its ``vqual_vsphere_*`` variables.

    Raises:
        BadInputError: a required variable is missing or malformed (the message names it,
            never its value when it is the password).
    """
    def need(name: str) -> str:
        value = host_vars.get(name)
        if value is None or value == "":
            raise BadInputError(f"no {name} set for this target")
        return str(value)

    port = host_vars.get("vqual_vsphere_port", 443)
    try:
        port_number = int(port)
    except (TypeError, ValueError):
        raise BadInputError(f"vqual_vsphere_port must be a port number, not {port!r}") from None
    validate = host_vars.get("vqual_vsphere_validate_certs", True)
    if isinstance(validate, str):
        validate = validate.strip().lower() not in ("false", "no", "0", "off")
    return Endpoint(
        host=need("vqual_vsphere_host"),
        username=need("vqual_vsphere_username"),
        password=need("vqual_vsphere_password"),
        port=port_number,
        validate_certs=bool(validate),
        ca_file=str(host_vars["vqual_vsphere_ca_file"])
        if host_vars.get("vqual_vsphere_ca_file")
        else None,
        datacenter=str(host_vars["vqual_vsphere_datacenter"])
        if host_vars.get("vqual_vsphere_datacenter")
        else None,
        cluster=str(host_vars["vqual_vsphere_cluster"])
        if host_vars.get("vqual_vsphere_cluster")
        else None,
    )
