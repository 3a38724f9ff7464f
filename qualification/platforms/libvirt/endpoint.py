"""A libvirt target and how its host variables name it.

Host variables: ``vqual_libvirt_uri`` (the endpoint; keep credentials out of it, a password
in it anyway is masked), ``vqual_libvirt_pool`` (pool of the OQ lifecycle's throwaway disk),
``vqual_libvirt_oq`` (template and destination of the OQ on booted guests) and
``vqual_libvirt_domain_type`` (``qemu`` for TCG labs); a KVM host's SSH connection variables
(:data:`SSH_VARS`) for the rolling patch. No vendor library here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qualification.errors import BadInputError

#: The inventory's connection variables the KVM patch executor reads (beside its ``vqual_*`` ones).
SSH_VARS = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
            "ansible_ssh_common_args")


@dataclass(frozen=True)
class LibvirtEndpoint:
    """A libvirt target: its URI and the site facts its OQ needs."""

    uri: str
    pool: str | None = None
    guest_oq: Mapping[str, Any] = field(default_factory=dict)
    domain_type: str | None = None


def endpoint_from_vars(host_vars: Mapping[str, Any]) -> LibvirtEndpoint:
    """The libvirt target a host's variables name.

    Raises:
        BadInputError: no ``vqual_libvirt_uri``.
    """
    uri = str(host_vars.get("vqual_libvirt_uri") or "")
    if not uri:
        raise BadInputError("no vqual_libvirt_uri set for this target")
    pool = host_vars.get("vqual_libvirt_pool")
    guest_oq = host_vars.get("vqual_libvirt_oq")
    domain_type = host_vars.get("vqual_libvirt_domain_type")
    return LibvirtEndpoint(
        uri=uri,
        pool=str(pool) if pool else None,
        guest_oq=dict(guest_oq) if isinstance(guest_oq, Mapping) else {},
        domain_type=str(domain_type) if domain_type else None,
    )
