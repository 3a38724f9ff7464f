"""The vSphere adapter's name-to-object maps (VQ-90) on the lab's simulated vCenter: a VM is
found through the map in one round trip, without a listing, and the map is checked on use, so
a VM renamed or removed by another client is never found under its old name through a stale
entry. The VM is this module's own clone, removed at the end; the hosts are only read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from vqual_lab import manager, vcsim

from qualification.errors import PlatformError
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint

pytestmark = pytest.mark.lab

NAME = "vq90-lookup"
RENAMED = "vq90-lookup-renamed"


def _platform() -> VspherePlatform:
    ctx = manager.context()
    comp = manager.component("vcsim")
    assert isinstance(comp, vcsim.VcsimComponent)
    inst = comp.instance("vcenter")
    user, password = vcsim.read_credentials(ctx, inst)
    return VspherePlatform(
        Endpoint(inst.address, user, password, port=inst.port, validate_certs=False)
    )


@pytest.fixture()
def pair(lab: object) -> Iterator[tuple[VspherePlatform, VspherePlatform]]:
    """The adapter under test and a second, independent session (another client)."""
    with _platform() as mine, _platform() as other:
        try:
            yield mine, other
        finally:
            for name in (NAME, RENAMED):
                if other.vm_exists(name):
                    other.delete_vm(name, delete_storage=True)


def _count_listings(platform: VspherePlatform) -> list[int]:
    """Counts the adapter's inventory listings (a spy on its own method, not a mock)."""
    calls = [0]
    real: Callable[..., Any] = platform._retrieve

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return real(*args)

    setattr(platform, "_retrieve", counted)  # noqa: B010 - an instance attribute shadows the method
    return calls


def _clone(other: VspherePlatform) -> None:
    source = next(v.name for v in other.vm_summaries() if not v.template)
    other.clone_vm(source, NAME)


def test_a_vm_renamed_by_another_client_is_not_found_under_its_old_name(
    pair: tuple[VspherePlatform, VspherePlatform],
) -> None:
    mine, other = pair
    _clone(other)
    assert mine.vm(NAME).name == NAME  # the map is built here
    listings = _count_listings(mine)
    assert mine.vm(NAME).name == NAME
    assert listings[0] == 0, "a VM the map knows is read without a listing"

    obj, _props = other._vm_obj(NAME)
    other._wait("rename", NAME, obj.Rename_Task(RENAMED))
    with pytest.raises(PlatformError, match=f"vm '{NAME}' not found"):
        mine.vm(NAME)
    assert listings[0] == 1, "the stale entry sent the lookup to one fresh listing"
    assert mine.vm(RENAMED).name == RENAMED
    assert not mine.vm_exists(NAME)


def test_a_vm_removed_by_another_client_is_not_found_through_the_map(
    pair: tuple[VspherePlatform, VspherePlatform],
) -> None:
    mine, other = pair
    _clone(other)
    assert mine.vm(NAME).name == NAME
    other.delete_vm(NAME, delete_storage=True)
    with pytest.raises(PlatformError, match=f"vm '{NAME}' not found"):
        mine.vm(NAME)
    with pytest.raises(PlatformError, match=f"vm '{NAME}' not found"):
        mine.power_on(NAME)
    assert not mine.vm_exists(NAME)


def test_a_host_map_entry_is_checked_against_the_name_the_host_has(
    pair: tuple[VspherePlatform, VspherePlatform],
) -> None:
    """A stale host entry (a name the object no longer has) is refused, not used; the real
    name is found again after one fresh listing. Hosts are shared, so the entry is made stale
    in the map rather than by renaming a host."""
    mine, _other = pair
    first = mine.hosts()[0].name
    real = mine._host_obj(first)
    mine._host_objs = {"gone-host": real}
    with pytest.raises(PlatformError, match="host 'gone-host' not found"):
        mine._host_obj("gone-host")
    assert mine._host_obj(first) == real
    listings = _count_listings(mine)
    assert mine._host_obj(first) == real
    assert listings[0] == 0, "a host the map knows is read without a listing"
