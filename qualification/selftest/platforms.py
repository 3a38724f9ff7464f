"""Self checks of the platform registry (VQ-24): which plug-ins this installation runs, and
that a platform it does not have is refused rather than guessed."""

from __future__ import annotations

from importlib.metadata import entry_points

from qualification import __version__
from qualification.errors import BadInputError
from qualification.platforms import registry
from qualification.selftest.base import Outcome, SelfCheck

#: The platforms vqual itself ships; a site may add others (they are listed, not judged).
SHIPPED = ("hyperv", "libvirt", "vsphere")
#: A name no plug-in may take, asked for to see the refusal.
NO_SUCH = "vqual-selftest-no-such-platform"


def registered_plugins() -> dict[str, dict[str, str | None]]:
    """Every ``vqual.platforms`` entry point: its target and the distribution that brings it."""
    found: dict[str, dict[str, str | None]] = {}
    for ep in sorted(entry_points(group=registry.ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        found.setdefault(ep.name, {
            "entry_point": ep.value,
            "distribution": dist.metadata["Name"] if dist is not None else None,
            "version": dist.version if dist is not None else None,
        })
    return found


def _shipped_registered() -> Outcome:
    found = registered_plugins()
    want = {"distribution": "vqual", "version": __version__}
    wrong = [
        f"{name}: " + (
            "not registered" if name not in found
            else f"registered by {found[name]['distribution']} {found[name]['version']}"
        )
        for name in SHIPPED
        if name not in found
        or {k: found[name][k] for k in want} != want
    ]
    try:
        loaded = registry.names()
    except BadInputError as exc:  # a broken third-party plug-in stops the registry loading
        return Outcome(False, found, exc.one_line())
    missing = [n for n in SHIPPED if n not in loaded]
    wrong += [f"{n}: its entry point does not load" for n in missing if n in found]
    return Outcome(not wrong, found, "; ".join(wrong) or None)


def _unknown_refused() -> Outcome:
    try:
        registry.get(NO_SUCH)
    except BadInputError as exc:
        line = exc.one_line()
        named = [n for n in registry.names() if n not in line]
        ok = "\n" not in line and NO_SUCH in line and not named
        reason = None if ok else (
            f"the refusal does not name the registered platform(s) {', '.join(named)}"
            if named else "the refusal is not one line naming the platform asked for")
        return Outcome(ok, line, reason)
    return Outcome(False, None, f"registry.get({NO_SUCH!r}) returned a plug-in")


def platform_checks() -> list[SelfCheck]:
    """IQ: the shipped plug-ins are registered by this vqual, others are listed; OQ: a
    platform that is not registered is refused in one line naming those that are."""
    return [
        SelfCheck(
            "ST-IQ-06",
            "the platform plug-ins vqual ships are registered by this vqual; every plug-in "
            "and the distribution that brings it is listed",
            "IQ",
            "VQ-24",
            f"importlib.metadata.entry_points(group={registry.ENTRY_POINT_GROUP!r}), "
            "qualification.platforms.registry.names()",
            {"op": "equals", "value": {n: {"distribution": "vqual", "version": __version__}
                                       for n in SHIPPED}},
            _shipped_registered,
        ),
        SelfCheck(
            "ST-OQ-14",
            "a platform that is not registered is refused in one line naming the registered ones",
            "OQ",
            "VQ-24",
            f"qualification.platforms.registry.get({NO_SUCH!r})",
            {"op": "equals", "value": True},
            _unknown_refused,
        ),
    ]
