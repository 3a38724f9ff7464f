"""The pinned trust root (qualification/signing/trust_root.py): the pin file, its rotation
endorsements, where a pin may come from, and judging a store by the version in force."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from qualification.errors import BadInputError, TrustError
from qualification.review.trust_history import rooted_store, sign_trust_store
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trust_root import (
    PIN_ENV,
    TrustRoot,
    check_versions_rooted,
    find_pin,
    new_root,
    parse_pin,
    pin_yaml,
    rotate,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 6, 1, tzinfo=UTC)


def _pin(*roots_of: Ed25519Signer) -> bytes:
    return pin_yaml([new_root(roots_of[0].public_pem(), "Root A", T0)])


def test_a_pin_round_trips_and_names_its_root() -> None:
    a = Ed25519Signer.generate()
    (root,) = parse_pin(_pin(a), "pin")
    assert root.keyid == a.keyid and root.valid_from == T0 and root.valid_until is None


def test_rotation_is_endorsed_by_the_previous_root_and_checked_on_load() -> None:
    a, b = Ed25519Signer.generate(), Ed25519Signer.generate()
    roots = rotate(parse_pin(_pin(a), "pin"), a, b.public_pem(), "Root B", T1)
    loaded = parse_pin(pin_yaml(roots), "pin")
    assert [r.keyid for r in loaded] == [a.keyid, b.keyid]
    assert loaded[0].valid_until == T1 and loaded[1].valid_from == T1
    root = TrustRoot(loaded, "test", Path("pin"))
    # The rotated-out root cannot vouch for anything signed after it handed over.
    check_versions_rooted(root, [(T0 + timedelta(days=1), 1, a.keyid),
                                 (T1 + timedelta(days=1), 2, b.keyid)])
    with pytest.raises(TrustError, match="version 2 is not signed by the pinned trust root: "
                       f"root {a.keyid[:16]} is pinned for"):
        check_versions_rooted(root, [(T0 + timedelta(days=1), 1, a.keyid),
                                     (T1 + timedelta(days=1), 2, a.keyid)])


def test_a_rotation_not_endorsed_by_the_previous_root_is_refused() -> None:
    a, b, c = (Ed25519Signer.generate() for _ in range(3))
    with pytest.raises(TrustError, match="only the current root"):
        rotate(parse_pin(_pin(a), "pin"), c, b.public_pem(), "Root B", T1)
    doc = yaml.safe_load(pin_yaml(rotate(parse_pin(_pin(a), "pin"), a, b.public_pem(), "B", T1)))
    doc["roots"][1]["valid_from"] = "2026-05-01T00:00:00Z"  # the endorsement says June
    with pytest.raises(TrustError, match="must end .* when|does not verify"):
        parse_pin(yaml.safe_dump(doc).encode(), "pin")
    doc = yaml.safe_load(pin_yaml(rotate(parse_pin(_pin(a), "pin"), a, b.public_pem(), "B", T1)))
    del doc["roots"][1]["endorsement"]
    with pytest.raises(TrustError, match="is not endorsed by the root before it"):
        parse_pin(yaml.safe_dump(doc).encode(), "pin")


def test_a_pin_inside_the_state_directory_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "root.yaml").write_bytes(_pin(Ed25519Signer.generate()))
    with pytest.raises(BadInputError, match="inside the state directory") as err:
        find_pin(state, state / "root.yaml")
    assert "\n" not in err.value.one_line()
    with pytest.raises(BadInputError, match="inside the state directory"):
        find_pin(state, None, {PIN_ENV: str(state / "root.yaml")})


def test_pin_sources_in_order(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    explicit, env_pin = tmp_path / "a.yaml", tmp_path / "b.yaml"
    explicit.write_bytes(_pin(Ed25519Signer.generate()))
    env_pin.write_bytes(_pin(Ed25519Signer.generate()))
    none = tmp_path / "absent.yaml"
    assert find_pin(state, explicit, {PIN_ENV: str(env_pin)}, none).source.startswith(  # type: ignore[union-attr]
        "--trust-root")
    assert find_pin(state, None, {PIN_ENV: str(env_pin)}, none).source.startswith(PIN_ENV)  # type: ignore[union-attr]
    assert find_pin(state, None, {}, none) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="a root-owned system pin needs root")
def test_a_system_pin_writable_by_others_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    folder = tmp_path / "etc-vqual"
    folder.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    system = folder / "trust-root.yaml"
    system.write_bytes(_pin(Ed25519Signer.generate()))
    os.chmod(system, 0o644)
    assert find_pin(state, None, {}, system).source == str(system)  # type: ignore[union-attr]
    os.chmod(system, 0o666)
    with pytest.raises(BadInputError, match="system trust root refused: .* writable by someone"):
        find_pin(state, None, {}, system)
    os.chmod(system, 0o644)
    os.chmod(folder, 0o777)
    with pytest.raises(BadInputError, match="system trust root refused"):
        find_pin(state, None, {}, system)


def _state_signed_by(tmp_path: Path, admin: Ed25519Signer) -> Path:
    state = tmp_path / "state"
    store = TrustStore.empty(state / "trust.yaml")
    store.add_key(public_key_pem=admin.public_pem(), name="Admin", identity="admin",
                  roles=["trust-admin"], valid_from=T0)
    store.save()
    sign_trust_store(state, admin)
    return state


def test_a_key_added_after_a_records_time_cannot_vouch_for_it(tmp_path: Path) -> None:
    admin = Ed25519Signer.generate()
    state = _state_signed_by(tmp_path, admin)
    root = TrustRoot(parse_pin(_pin(admin), "pin"), "test", tmp_path / "pin")
    before = datetime.now(UTC)
    late = Ed25519Signer.generate()
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(public_key_pem=late.public_pem(), name="Late", identity="late",
                  roles=["executor"], valid_from=T0)  # claims to be valid since January
    store.save()
    sign_trust_store(state, admin)
    timeline = rooted_store(state, root)
    assert timeline.version == 2
    ok, why = timeline.key_status_at(late.keyid, before)
    assert not ok and "was not in trust store version 1" in why and "entered the store later" in why
    assert not timeline.role_at(late.keyid, "executor", before)
    assert timeline.key_status_at(late.keyid, datetime.now(UTC)) == (True, "valid")
    ok, why = timeline.key_status_at(admin.keyid, T0)
    assert not ok and "no signed trust store version was in force" in why


def test_a_store_signed_by_a_key_that_is_not_pinned_is_refused(tmp_path: Path) -> None:
    state = _state_signed_by(tmp_path, Ed25519Signer.generate())
    root = TrustRoot(parse_pin(_pin(Ed25519Signer.generate()), "pin"), "test", tmp_path / "p")
    with pytest.raises(TrustError, match="version 1 is not signed by the pinned trust root: "
                       "key .* is not a pinned trust root"):
        rooted_store(state, root)


def _add_admin(state: Path, admin: Ed25519Signer, name: str) -> None:
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(public_key_pem=admin.public_pem(), name=name, identity=name,
                  roles=["trust-admin"], valid_from=T0)
    store.save()


def test_a_rotated_root_signs_later_versions_and_the_old_one_cannot(tmp_path: Path) -> None:
    a, b = Ed25519Signer.generate(), Ed25519Signer.generate()
    state = _state_signed_by(tmp_path, a)
    _add_admin(state, b, "B")
    sign_trust_store(state, a)  # version 2: B becomes a trust-admin, still under root A
    roots = rotate(parse_pin(_pin(a), "pin"), a, b.public_pem(), "Root B", datetime.now(UTC))
    pin = tmp_path / "pin.yaml"
    pin.write_bytes(pin_yaml(roots))
    root = find_pin(state, pin)
    assert root is not None and [r.keyid for r in root.roots] == [a.keyid, b.keyid]
    assert rooted_store(state, root).version == 2
    executor = Ed25519Signer.generate()
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(public_key_pem=executor.public_pem(), name="E", identity="e",
                  roles=["executor"], valid_from=T0)
    store.save()
    old_root = tmp_path / "old-root"
    shutil.copytree(state, old_root)
    sign_trust_store(state, b)
    assert rooted_store(state, root).version == 3
    # A is still a trust-admin in the store, but the pin no longer vouches for it.
    sign_trust_store(old_root, a)
    with pytest.raises(TrustError, match=f"version 3 is not signed by the pinned trust root: "
                       f"root {a.keyid[:16]} is pinned for"):
        rooted_store(old_root, root)
