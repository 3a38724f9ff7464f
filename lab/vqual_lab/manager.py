"""Bring the lab's components up and down, and write the lab inventory.

``up`` starts the selected components in parallel (a failing one is reported with its log
tail; the others still come up), then writes ``inventories/lab/hosts.yml``, ``ssh_config``
(for testinfra's ssh backend) and ``group_vars/all.yml`` from every running component's
``inventory()``. ``down`` stops components in reverse order. Everything a component starts
is recorded by PID in ``<lab dir>/run/state.json``, so ``down`` works from another process.
"""

from __future__ import annotations

import importlib
import os
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from qualification.errors import BadInputError
from vqual_lab.component import ComponentStatus, LabComponent, LabContext

# Components in start order: name -> (module, class). ``register`` adds more.
_KNOWN: dict[str, tuple[str, str]] = {
    "kvm": ("vqual_lab.kvm", "KvmCluster"),
    # The guests wait for kvm themselves (its up is serialised), so all may start together.
    "guests": ("vqual_lab.guests", "Guests"),
    "vcsim": ("vqual_lab.vcsim", "VcsimComponent"),
    "winrm": ("vqual_lab.winrm_standin", "WinRMStandIn"),
    "tsa": ("vqual_lab.tsa", "TsaComponent"),
}
_FACTORIES: dict[str, Callable[[], LabComponent]] = {}
_INSTANCES: dict[str, LabComponent] = {}
_LOCK = threading.Lock()


def register(name: str, factory: Callable[[], LabComponent]) -> None:
    """Add a component (started after the built-in ones)."""
    with _LOCK:
        _FACTORIES[name] = factory
        _INSTANCES.pop(name, None)


def names() -> list[str]:
    """Every component name, in start order."""
    return list(_KNOWN) + [n for n in _FACTORIES if n not in _KNOWN]


def component(name: str) -> LabComponent:
    """The (one per process) instance of component ``name``.

    Raises:
        BadInputError: no such component.
    """
    with _LOCK:
        if name in _INSTANCES:
            return _INSTANCES[name]
        if name in _FACTORIES:
            inst = _FACTORIES[name]()
        elif name in _KNOWN:
            module, cls = _KNOWN[name]
            inst = getattr(importlib.import_module(module), cls)()
        else:
            known = ", ".join(names())
            raise BadInputError(f"no lab component {name!r} (known: {known})", where="lab")
        _INSTANCES[name] = inst
        return inst


def default_repo_root() -> Path | None:
    """The vqual checkout this package runs from, if it is one (to write inventories/lab)."""
    root = Path(__file__).resolve().parents[2]
    collection = root / "ansible_collections" / "vqual" / "qualification"
    return root if (collection / "galaxy.yml").exists() and (root / "inventories").is_dir() else None


def context(repo_root: Path | None = None, log: Callable[[str], None] | None = None) -> LabContext:
    """The lab context from ``$VQUAL_LAB_DIR``, writing the inventory into ``repo_root``."""
    return LabContext.default(repo_root=repo_root or default_repo_root(), log=log)


def _select(selected: Sequence[str] | None) -> list[str]:
    if not selected:
        # ``VQUAL_LAB_COMPONENTS=kvm,vcsim`` narrows "all" (for example in a test session).
        env = [n.strip() for n in os.environ.get("VQUAL_LAB_COMPONENTS", "").split(",")]
        if not any(env):
            return names()
        selected = [n for n in env if n]
    unknown = [n for n in selected if n not in names()]
    if unknown:
        known = ", ".join(names())
        raise BadInputError(f"no lab component {unknown[0]!r} (known: {known})", where="lab")
    return [n for n in names() if n in selected]


def _guarded(name: str, action: str, ctx: LabContext) -> ComponentStatus:
    """Run one component's action; an exception becomes a ``failed`` status, not a crash."""
    try:
        comp = component(name)
        result: ComponentStatus = getattr(comp, action)(ctx)
        return result
    except Exception as exc:  # noqa: BLE001 - one component's failure must not stop the rest
        lines = traceback.format_exception(exc)
        tail = "".join(lines).splitlines()[-12:]
        one = " ".join(str(exc).split()) or type(exc).__name__
        return ComponentStatus(name, "failed", f"{action} failed: {one}", tail)


def up(
    components: Sequence[str] | None = None,
    *,
    ctx: LabContext | None = None,
    vary: Sequence[str] = (),
) -> list[ComponentStatus]:
    """Bring components up (all by default, in parallel) and write the lab inventory.

    Args:
        components: Component names; None for all.
        ctx: Lab context; default from ``$VQUAL_LAB_DIR``.
        vary: Variations to apply after start, ``"<host>:<kind>"`` (see ``kvm.VARIATIONS``).

    Returns:
        One status per selected component, in start order.
    """
    ctx = ctx or context()
    selected = _select(components)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, len(selected))) as pool:
        futures = [pool.submit(_guarded, n, "up", ctx) for n in selected]
        results = [f.result() for f in futures]
    for spec in vary:
        apply_variation(spec, ctx=ctx)
    write_inventory(ctx)
    return results


def down(
    components: Sequence[str] | None = None, *, ctx: LabContext | None = None
) -> list[ComponentStatus]:
    """Stop components (all by default) in reverse start order; rewrites the inventory."""
    ctx = ctx or context()
    results = [_guarded(n, "down", ctx) for n in reversed(_select(components))]
    write_inventory(ctx)
    return list(reversed(results))


def status(
    components: Sequence[str] | None = None, *, ctx: LabContext | None = None
) -> list[ComponentStatus]:
    """Each component's status."""
    ctx = ctx or context()
    return [_guarded(n, "status", ctx) for n in _select(components)]


def apply_variation(spec: str, *, ctx: LabContext | None = None) -> None:
    """Apply ``"<host>:<kind>"`` (for example ``kvm2:loose-mode``) to a running lab host.

    Raises:
        BadInputError: malformed spec, unknown host or kind.
    """
    from vqual_lab.kvm import KvmCluster

    ctx = ctx or context()
    host, sep, kind = spec.partition(":")
    if not sep or not host or not kind:
        raise BadInputError(f"variation {spec!r} is not <host>:<kind>", where="lab")
    kvm = component("kvm")
    assert isinstance(kvm, KvmCluster)
    kvm.vary(ctx, host, kind)


def reset(host: str | None = None, *, ctx: LabContext | None = None) -> None:
    """Undo every variation and patch on one lab KVM host (or all)."""
    from vqual_lab.kvm import KvmCluster

    kvm = component("kvm")
    assert isinstance(kvm, KvmCluster)
    kvm.reset(ctx or context(), host)


def inventory_dir(ctx: LabContext) -> Path:
    """``$VQUAL_LAB_INVENTORY_DIR``, else ``<repo>/inventories/lab`` (or
    ``<lab dir>/inventory`` outside a checkout)."""
    if os.environ.get("VQUAL_LAB_INVENTORY_DIR"):
        return Path(os.environ["VQUAL_LAB_INVENTORY_DIR"])
    if ctx.repo_root is not None:
        return ctx.repo_root / "inventories" / "lab"
    return ctx.lab_dir / "inventory"


def build_inventory(fragments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge components' fragments into one Ansible YAML inventory (a fragment's top-level
    ``vars`` go to group ``all``)."""
    children: dict[str, Any] = {}
    all_vars: dict[str, Any] = {}
    for fragment in fragments:
        all_vars.update(fragment.get("vars") or {})
        for group, body in fragment.get("groups", {}).items():
            entry = children.setdefault(group, {"hosts": {}, "vars": {}})
            entry["hosts"].update(body.get("hosts") or {})
            entry["vars"].update(body.get("vars") or {})
    for entry in children.values():
        if not entry["vars"]:
            del entry["vars"]
    return {"all": {"vars": all_vars, "children": children} if all_vars else {"children": children}}


def ssh_config(inventory: dict[str, Any]) -> str:
    """An OpenSSH client config for every inventory host reached by SSH with a key file."""
    blocks: list[str] = []
    for group in inventory["all"]["children"].values():
        gvars = group.get("vars", {})
        for host, hvars in (group.get("hosts") or {}).items():
            merged = {**gvars, **(hvars or {})}
            key = merged.get("ansible_ssh_private_key_file")
            if "ansible_host" not in merged or not key or merged.get("ansible_connection"):
                continue
            lines = [
                f"Host {host}",
                f"  HostName {merged['ansible_host']}",
                f"  User {merged.get('ansible_user', 'root')}",
                f"  IdentityFile {key}",
                "  IdentitiesOnly yes",
                "  StrictHostKeyChecking no",
                "  UserKnownHostsFile /dev/null",
                "  LogLevel ERROR",
            ]
            if "ansible_port" in merged:
                lines.append(f"  Port {merged['ansible_port']}")
            blocks.append("\n".join(lines))
    return "# Written by `scripts/lab up`; regenerated on every up and down.\n\n" + (
        "\n\n".join(blocks) + "\n" if blocks else ""
    )


def write_inventory(ctx: LabContext) -> Path:
    """Write ``hosts.yml``, ``ssh_config`` and ``group_vars/all.yml`` for what is running.

    Returns:
        The inventory directory.
    """
    fragments = []
    for name in names():
        st = _guarded(name, "status", ctx)
        if st.state in ("running", "partial"):
            fragments.append(component(name).inventory(ctx))
    inv = build_inventory(fragments)
    out = inventory_dir(ctx)
    (out / "group_vars").mkdir(parents=True, exist_ok=True)
    header = "# Written by `scripts/lab up` from the running lab components; do not edit.\n"
    (out / "hosts.yml").write_text(header + yaml.safe_dump(inv, sort_keys=False))
    (out / "ssh_config").write_text(ssh_config(inv))
    all_vars = {"vqual_lab": True, "vqual_lab_dir": str(ctx.lab_dir)}
    (out / "group_vars" / "all.yml").write_text(header + yaml.safe_dump(all_vars))
    return out
