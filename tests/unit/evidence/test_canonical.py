"""canonical_bytes gives the same bytes as the rfc8785 reference for every record shape."""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qualification.evidence import canonical
from qualification.evidence.canonical import (
    MAX_SAFE_INT,
    CanonicalError,
    canonical_bytes,
    canonical_record_bytes,
    normalize_for_record,
)

# Text over the whole code space, lone surrogates included: both encoders must refuse those.
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
# Text that stresses escaping and key order: controls, quotes, DEL, U+2028, BMP private use
# (U+E000..U+FFFF sorts differently from astral characters under UTF-16), astral characters.
tricky_chars = st.sampled_from(
    [
        "\x00",
        "\x08",
        "\t",
        "\n",
        "\x0c",
        "\r",
        "\x1f",
        '"',
        "\\",
        "/",
        "\x7f",
        "\u2028",
        "\ue000",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "é",
        "a",
        "Z",
        "0",
    ]
)
tricky_text = st.lists(tricky_chars, max_size=6).map("".join)
text = st.one_of(tricky_text, any_text)
safe_ints = st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


def json_of(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda kids: st.one_of(st.lists(kids, max_size=5), st.dictionaries(text, kids, max_size=5)),
        max_leaves=25,
    )


# Records rarely hold floats; without them the fast encoder does the work, so both shapes
# are tested separately.
json_values = json_of(st.one_of(st.none(), st.booleans(), safe_ints, finite_floats, text))
json_values_no_float = json_of(st.one_of(st.none(), st.booleans(), safe_ints, text))


def reference(obj: Any) -> bytes | None:
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, ValueError):
        return None


def ours(obj: Any) -> bytes | None:
    try:
        return canonical_bytes(obj)
    except CanonicalError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values_no_float)
@example({"\ue000": 1, "\U0001f600": 2, "b": {"\U00010000": None, "\uffff": []}})
@example(["\x00", "\x1f", "\u2028", "\x7f", "\ud83d\ude00"])
@example({"k": "\udfff"})
def test_fast_path_identical_bytes_to_reference(obj: Any) -> None:
    assert ours(obj) == reference(obj)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
@example({"\ue000": 1, "\U0001f600": 2})
@example({"a": [1.0, -0.0, 1e21, 1e-7, 5e-324, 123456789012345680000.0]})
@example({"duration_ms": [0.37, -2.5, 0.0001, 1e-05, 9999999999999998.0, 1234567.125, 1e16]})
@example("\ud800")
@example({"k": "\udfff"})
@example({"\x00\x1f": "\u2028\x7f"})
def test_identical_bytes_to_reference(obj: Any) -> None:
    assert ours(obj) == reference(obj)


@settings(max_examples=400, deadline=None)
@given(st.lists(finite_floats, min_size=1, max_size=8))
@example([0.1, 0.0001, 0.00011, 123.456, 1e15 + 0.5, 2.0**52 + 0.5, -7.25])
def test_plain_floats_take_the_fast_path_with_identical_bytes(values: list[float]) -> None:
    """Plain floats (no exponent, no .0 ending) are encoded by the C encoder, and its bytes
    are the reference's; any other float still goes to the reference."""
    plain = [v for v in values if canonical._plain_float(v)]
    assert canonical._scan({"t": plain}) == 0
    assert ours({"t": values}) == reference({"t": values})
    assert ours({"t": plain}) == reference({"t": plain})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(tricky_text, st.integers(), max_size=6))
def test_big_integers_refused_then_normalised_to_strings(obj: dict[str, int]) -> None:
    has_big = any(abs(v) > MAX_SAFE_INT for v in obj.values())
    assert (ours(obj) is None) == has_big == (reference(obj) is None)
    norm = normalize_for_record(obj)
    for key, value in obj.items():
        assert norm[key] == (str(value) if abs(value) > MAX_SAFE_INT else value)
    assert canonical_bytes(norm) == rfc8785.dumps(norm)
    assert canonical_record_bytes(obj) == canonical_bytes(norm)


def test_boundary_integers() -> None:
    assert canonical_bytes([MAX_SAFE_INT, -MAX_SAFE_INT]) == b"[9007199254740991,-9007199254740991]"
    with pytest.raises(CanonicalError, match=r"integer 9007199254740992 at \$\.a\[1\]"):
        canonical_bytes({"a": [0, MAX_SAFE_INT + 1]})
    assert canonical_record_bytes({"a": 2**64}) == b'{"a":"18446744073709551616"}'


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1: "a"}, "object key 1 at \\$ is not a string"),
        ({"a": {"b": b"x"}}, "type bytes at \\$.a.b is not JSON"),
        ({"a": Color.RED}, "type Color at \\$.a is not JSON"),
        ([Level.HIGH], "type Level at \\$\\[0\\]; normalize_for_record"),
        ({"a": math.nan}, "cannot canonicalise"),
        ({"a": math.inf}, "cannot canonicalise"),
        ("\udc80", "lone surrogate"),
    ],
)
def test_non_json_values_are_refused_with_their_path(value: Any, message: str) -> None:
    with pytest.raises(CanonicalError, match=message):
        canonical_bytes(value)


def test_normalize_converts_subclasses_and_tuples() -> None:
    assert normalize_for_record({"l": Level.HIGH, "t": (1, "x")}) == {"l": 3, "t": [1, "x"]}
    assert canonical_record_bytes({"l": Level.HIGH}) == b'{"l":3}'
    with pytest.raises(CanonicalError, match=r"type set at \$\.s"):
        normalize_for_record({"s": {1}})
