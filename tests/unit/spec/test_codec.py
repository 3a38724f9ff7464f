"""A loaded spec as JSON data and back: every shipped protocol, and bytes bound to digests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qualification.errors import BadInputError
from qualification.spec import load_spec
from qualification.spec.codec import spec_from_json, spec_to_json

SPECS = Path(__file__).resolve().parents[3] / "ansible_collections" / "vqual" / "qualification" / "specs"


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_spec_round_trips(path: Path) -> None:
    spec = load_spec(path)
    again = spec_from_json(json.loads(json.dumps(spec_to_json(spec))))
    assert again == spec
    assert again.raw == spec.raw and [d.raw for d in again.data_files] == [d.raw for d in spec.data_files]


def test_a_spec_with_a_clone_section_round_trips() -> None:
    spec = load_spec(SPECS / "master-vm.yaml")
    assert spec.clone is not None
    assert spec_from_json(json.loads(json.dumps(spec_to_json(spec)))).clone == spec.clone


def test_bytes_that_lost_their_digest_and_malformed_data_are_refused() -> None:
    data = spec_to_json(load_spec(SPECS / "linux-virt-host.yaml"))
    changed = dict(data, raw="AAAA")
    with pytest.raises(BadInputError, match="do not have their recorded digest"):
        spec_from_json(changed)
    with pytest.raises(BadInputError, match="malformed spec data"):
        spec_from_json({k: v for k, v in data.items() if k != "tests"})
    with pytest.raises(BadInputError, match="malformed spec data"):
        spec_from_json(dict(data, raw="not base64!"))
    with pytest.raises(BadInputError, match="version 9"):
        spec_from_json(dict(data, v=9))
