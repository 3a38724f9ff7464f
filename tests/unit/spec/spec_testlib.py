"""Shared helpers of the spec tests: a tiny check registry, a valid spec, line lookup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TinyRegistry:
    """A check library with two check types, so loader tests do not depend on the real one."""

    def known_check_types(self) -> frozenset[str]:
        return frozenset({"os_release", "sysctl"})

    def validate_params(self, check: str, params: Mapping[str, Any]) -> str | None:
        if check == "os_release" and "field" not in params:
            return "os_release needs params.field"
        if check == "sysctl" and not isinstance(params.get("key"), str):
            return "sysctl needs params.key (a string)"
        return None


VALID_SPEC = """\
apiVersion: vqual/v1
kind: Protocol
metadata:
  name: linux-virt-host
  title: IQ of a Linux virtualization host
  version: "1.0"
requirements: [URS-HV-02, URS-SEC-01]
tests:
  - id: IQ-OS-001
    title: Operating system release is the approved one
    protocol: IQ
    requirements: [URS-HV-02]
    applies_to: [linux_host]
    risk: [high, medium, low]
    check: os_release
    params: {field: VERSION_ID}
    expect: {op: equals, value: "12"}
    acceptance: VERSION_ID is 12
  - id: IQ-SEC-001
    title: Kernel pointer restriction
    protocol: IQ
    requirements: [URS-SEC-01]
    applies_to: [linux_host, kvm_host]
    risk: [high]
    check: sysctl
    params: {key: kernel.kptr_restrict}
    expect: {op: in, value: [1, 2]}
    acceptance: kernel.kptr_restrict is 1 or 2
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in text")
