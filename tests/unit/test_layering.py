"""The core stays pure: nothing under qualification/ imports ansible."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "qualification"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_core_never_imports_ansible() -> None:
    offenders = [
        f"{path.relative_to(CORE.parent)} imports {name}"
        for path in sorted(CORE.rglob("*.py"))
        for name in _imports(path)
        if name == "ansible" or name.startswith("ansible.") or name.startswith("ansible_collections")
    ]
    assert offenders == []


def test_the_check_finds_an_ansible_import(tmp_path: Path) -> None:
    # The rule above must be able to fail: an ansible import is seen.
    bad = tmp_path / "bad.py"
    bad.write_text("from ansible.plugins.action import ActionBase\nimport ansible_runner\n")
    assert _imports(bad) == ["ansible.plugins.action", "ansible_runner"]


def test_import_linter_contracts_hold() -> None:
    # The contracts in pyproject.toml ([tool.importlinter]): the layering of DESIGN section 4.
    import subprocess
    import sys

    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=CORE.parent, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and " 0 broken" in done.stdout, done.stdout[-2000:]


COLLECTION_PLUGINS = CORE.parent / "ansible_collections" / "vqual" / "qualification" / "plugins"
UTILS = "ansible_collections.vqual.qualification.plugins.module_utils"
#: The one file through which the collection's modules reach the core.
PLATFORM_UTILS = f"{UTILS}.vqual_platform"


def _core_imports(path: Path) -> list[str]:
    """Every import of the core in ``path``, at any depth (imports inside functions count)."""
    return [n for n in _imports(path) if n == "qualification" or n.startswith("qualification.")]


def _module_offenders(modules: list[Path]) -> list[str]:
    offenders = []
    for path in modules:
        for name in _core_imports(path):
            offenders.append(f"{path.name} imports {name}")
        for name in _imports(path):
            if ".module_utils." in name and name != PLATFORM_UTILS:
                target = COLLECTION_PLUGINS / "module_utils" / (name.rsplit(".", 1)[1] + ".py")
                if target.is_file() and _core_imports(target):
                    offenders.append(f"{path.name} reaches the core through {name}")
    return offenders


def test_modules_reach_the_core_only_through_vqual_platform() -> None:
    # Probe modules import neither the core nor anything outside the standard library and
    # module_utils; platform modules reach the core through module_utils/vqual_platform.py only.
    modules = sorted((COLLECTION_PLUGINS / "modules").glob("*.py"))
    assert modules, COLLECTION_PLUGINS
    assert _module_offenders(modules) == []


def test_the_module_rule_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad_module.py"
    bad.write_text(
        "from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller "
        "import x\n"
        "def main():\n    from qualification.platforms.libvirt.adapter import probe\n"
    )
    assert _module_offenders([bad]) == [
        "bad_module.py imports qualification.platforms.libvirt.adapter",
        f"bad_module.py reaches the core through {UTILS}.vqual_controller",
    ]
