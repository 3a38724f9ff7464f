"""Probe modules run on the targets: they import the standard library and module_utils only.

DESIGN section 5: a target has Python but not vqual nor any other package, so a probe
module (``plugins/modules/*_probe.py``) and every module_utils file it uses (followed through
their own imports) may import only the standard library, Ansible's ``ansible.module_utils``
(shipped to the target with the module) and the collection's ``plugins/module_utils``. Checked
on the source (AST), every ``import`` wherever it stands, so a late import inside a function
counts too. A ``*_probe`` module that runs on the controller (delegated to localhost) is a
platform module instead and is named below with its reason; its documentation must say so.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "ansible_collections/vqual/qualification/plugins"
MODULE_UTILS = "ansible_collections.vqual.qualification.plugins.module_utils"

#: ``*_probe`` modules that run on the controller, not on targets, and why they may use more.
CONTROLLER_SIDE = {
    "libvirt_probe.py": "observes a hypervisor through libvirt's API from the controller "
    "(delegated to localhost, like the VMware collections): a platform module, which imports "
    "the installed qualification package with a guarded import (DESIGN section 5)",
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, absolute names (relative ones resolved
    against the collection's plugins package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = "ansible_collections.vqual.qualification.plugins." + path.parent.name
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            elif node.module:
                name = node.module
            else:
                continue
            if name == MODULE_UTILS:  # from ..module_utils import helper: the file helper.py
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, name))
    return found


def allowed(module: str) -> bool:
    if module.split(".")[0] in sys.stdlib_module_names:  # __future__ included
        return True
    return module == "ansible.module_utils" or module.startswith(
        ("ansible.module_utils.", MODULE_UTILS + ".")
    )


def violations(probes: list[Path], plugins: Path = PLUGINS) -> list[str]:
    """What the probes, and the module_utils files they reach, import beyond what is allowed."""
    found: list[str] = []
    seen: set[Path] = set()
    todo = list(probes)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for line, module in imports_of(path):
            if not allowed(module):
                found.append(f"{path.relative_to(plugins.parent).as_posix()}:{line} imports {module}")
            elif module.startswith(MODULE_UTILS + "."):
                util = plugins / "module_utils" / (module[len(MODULE_UTILS) + 1 :].split(".")[0] + ".py")
                if util.exists():
                    todo.append(util)
    return sorted(found)


def target_probes(plugins: Path = PLUGINS) -> list[Path]:
    return sorted(p for p in (plugins / "modules").glob("*_probe.py") if p.name not in CONTROLLER_SIDE)


def test_probe_modules_import_only_the_standard_library_and_module_utils() -> None:
    probes = target_probes()
    assert "host_probe.py" in [p.name for p in probes]
    assert violations(probes) == []


def test_controller_side_probes_are_documented_as_such() -> None:
    for name, reason in CONTROLLER_SIDE.items():
        text = (PLUGINS / "modules" / name).read_text(encoding="utf-8")
        assert reason.strip() and "Runs on the controller" in text, name


def test_the_check_sees_a_core_import_and_a_third_party_one_through_module_utils(
    tmp_path: Path,
) -> None:
    plugins = tmp_path / "plugins"
    (plugins / "modules").mkdir(parents=True)
    (plugins / "module_utils").mkdir()
    (plugins / "modules" / "x_probe.py").write_text(
        "import json\nfrom ansible.module_utils.basic import AnsibleModule\n"
        f"from {MODULE_UTILS}.helper import f\n"
        "def main():\n    from qualification.errors import VqualError\n"
    )
    (plugins / "module_utils" / "helper.py").write_text("import os\nimport yaml\nfrom . import other\n")
    (plugins / "module_utils" / "other.py").write_text("import requests\n")
    assert violations(target_probes(plugins), plugins) == [
        "plugins/module_utils/helper.py:2 imports yaml",
        "plugins/module_utils/other.py:1 imports requests",
        "plugins/modules/x_probe.py:5 imports qualification.errors",
    ]
