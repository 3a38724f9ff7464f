"""A Hyper-V host's WinRM endpoint and how a target's host variables name it.

Host variables: ``vqual_winrm_host``, ``vqual_winrm_username``, ``vqual_winrm_password`` (a
secret), ``vqual_winrm_scheme`` (https), ``vqual_winrm_port`` (5986 for https, 5985 for http),
``vqual_winrm_transport`` (ntlm), ``vqual_winrm_validate_certs`` (true),
``vqual_winrm_ca_file``. No vendor library here: the registry reads endpoints without pywinrm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qualification.errors import BadInputError

#: The variables of a Hyper-V target.
WINRM_VARS = (
    "vqual_winrm_host",
    "vqual_winrm_port",
    "vqual_winrm_username",
    "vqual_winrm_password",
    "vqual_winrm_scheme",
    "vqual_winrm_transport",
    "vqual_winrm_validate_certs",
    "vqual_winrm_ca_file",
)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach a Hyper-V host's WinRM service.

    ``password`` never appears in ``repr`` or messages. ``scheme="http"`` (no TLS) and
    ``validate_certs=False`` are explicit opt-outs, for a lab only.
    """

    host: str
    username: str
    password: str
    port: int = 5986
    scheme: str = "https"
    transport: str = "ntlm"
    validate_certs: bool = True
    ca_file: str | None = None
    timeout_s: int = 30

    def __repr__(self) -> str:
        return (
            f"Endpoint(host={self.host!r}, port={self.port}, scheme={self.scheme!r}, "
            f"transport={self.transport!r}, username={self.username!r}, password=***)"
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/wsman"


_TRUE = ("true", "yes", "1", "on")


def endpoint_from_vars(host_vars: Mapping[str, Any]) -> Endpoint:
    """The endpoint of a target from its ``vqual_winrm_*`` variables.

    Raises:
        BadInputError: a required variable is missing or malformed (the message names it,
            never the password's value).
    """

    def need(name: str) -> str:
        value = host_vars.get(name)
        if value is None or value == "":
            raise BadInputError(f"no {name} set for this target")
        return str(value)

    scheme = str(host_vars.get("vqual_winrm_scheme") or "https").lower()
    if scheme not in ("https", "http"):
        raise BadInputError(f"vqual_winrm_scheme must be https or http, not {scheme!r}")
    port = host_vars.get("vqual_winrm_port", 5986 if scheme == "https" else 5985)
    try:
        port_number = int(port)
    except (TypeError, ValueError):
        raise BadInputError(f"vqual_winrm_port must be a port number, not {port!r}") from None
    validate = host_vars.get("vqual_winrm_validate_certs", True)
    if isinstance(validate, str):
        validate = validate.strip().lower() in _TRUE
    transport = str(host_vars.get("vqual_winrm_transport") or "ntlm")
    if not re.fullmatch(r"basic|ntlm|kerberos|credssp", transport):
        raise BadInputError(
            f"vqual_winrm_transport must be ntlm, kerberos, credssp or basic, not {transport!r}"
        )
    return Endpoint(
        host=need("vqual_winrm_host"),
        username=need("vqual_winrm_username"),
        password=need("vqual_winrm_password"),
        port=port_number,
        scheme=scheme,
        transport=transport,
        validate_certs=bool(validate),
        ca_file=str(host_vars["vqual_winrm_ca_file"])
        if host_vars.get("vqual_winrm_ca_file")
        else None,
    )
