"""The inventory model of an inventory file, for tests: the product builds it inside Ansible
(the plan action), from the hostvars and groups a play sees."""

from __future__ import annotations

from pathlib import Path

from qualification.execution.inventory import read_hostvars
from qualification.spec import InventoryModel
from qualification.spec.inventory import CONNECTION_VARS


def model_of(inventory: Path) -> InventoryModel:
    """The model of ``inventory``: vqual's variables, the connection's and the groups."""
    hostvars = read_hostvars(
        inventory, names=("group_names", *CONNECTION_VARS), patterns=("vqual_.*",)
    )
    groups: dict[str, list[str]] = {}
    for host, variables in hostvars.items():
        for group in variables.pop("group_names", []):
            groups.setdefault(str(group), []).append(host)
    return InventoryModel.from_hostvars(hostvars, groups)
