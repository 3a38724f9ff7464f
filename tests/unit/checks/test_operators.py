"""Expectation operators: each decides pass/fail the way docs/formats.md and the spec say."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualification.checks.operators import (
    apply,
    compare_versions,
    describe_expectation,
    scalar_equal,
    to_number,
    validate_expect,
)

# --- equals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "value", "ok"),
    [
        ("12", "12", True),
        ("12", 12, True),  # a sysctl string against an inventory integer
        (12, "12", True),
        ("12", "13", False),
        ("12", "12.0", False),  # two strings compare as text
        ("1", True, False),  # a bool is not the number 1
        (True, True, True),
        (False, 0, False),
        (None, None, True),
        (None, "", False),
        ([22, 16514], [22, 16514], True),
        ([22], [22, 16514], False),
        ({"a": 1}, {"a": 1}, True),
        ("abc", 1, False),
    ],
)
def test_equals(observed: Any, value: Any, ok: bool) -> None:
    result, reason = apply(observed, {"op": "equals", "value": value})
    assert result is ok
    assert (reason is None) is ok


def test_equals_reason_names_both_values() -> None:
    ok, reason = apply("11", {"op": "equals", "value": "12"})
    assert not ok
    assert reason == 'expected "12", observed "11"'


# --- in -------------------------------------------------------------------------------------


def test_in_accepts_a_member_and_refuses_others() -> None:
    expect = {"op": "in", "value": ["0640", "0600"]}
    assert apply("0600", expect) == (True, None)
    ok, reason = apply("0644", expect)
    assert not ok and reason is not None and "0644" in reason and "0640" in reason


def test_in_compares_numbers_and_numeric_strings() -> None:
    assert apply("2", {"op": "in", "value": [1, 2]})[0] is True


def test_in_without_a_list_is_a_malformed_expectation() -> None:
    with pytest.raises(ValueError, match="needs a list"):
        apply("x", {"op": "in", "value": "x"})


# --- regex ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "pattern", "ok"),
    [
        ("6.1.0-28-amd64", r"6\.1\.0-[0-9]+-amd64", True),
        ("6.1.0-28-amd64-extra", r"6\.1\.0-[0-9]+-amd64", False),  # full match, not search
        ("x6.1.0-28-amd64", r"6\.1\.0-[0-9]+-amd64", False),
        (644, r"6\d\d", True),  # non-strings are matched as text
        (True, "true", True),
        (None, ".*", False),  # nothing observed never matches, even .*
        (["a"], ".*", False),
        ("", "(|x)", True),
    ],
)
def test_regex_is_a_full_match(observed: Any, pattern: str, ok: bool) -> None:
    assert apply(observed, {"op": "regex", "value": pattern})[0] is ok


# --- contains -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "value", "ok"),
    [
        ("aes256-gcm,aes128-cbc", "cbc", True),
        ("aes256-gcm", "cbc", False),
        (["rw", "nosuid", "nodev"], "nosuid", True),
        (["rw"], "nosuid", False),
        (["127.0.0.1", "::1"], "127.0.0.1", True),
        ([22, 80], "22", True),
        ({"vmx": 1}, "vmx", True),
        (None, "x", False),
        (5, "5", False),
    ],
)
def test_contains(observed: Any, value: Any, ok: bool) -> None:
    assert apply(observed, {"op": "contains", "value": value})[0] is ok


# --- absent ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "ok"),
    [
        (None, True),
        ("", True),
        ([], True),
        ({}, True),
        ("0", False),
        (0, False),
        (False, False),
        (["hypervisor"], False),
        ("1.0", False),
    ],
)
def test_absent(observed: Any, ok: bool) -> None:
    result, reason = apply(observed, {"op": "absent"})
    assert result is ok
    if not ok:
        assert reason is not None and "absent" in reason


# --- range ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "expect", "ok"),
    [
        (4, {"min": 1, "max": 4}, True),  # inclusive
        (1, {"min": 1, "max": 4}, True),
        (5, {"min": 1, "max": 4}, False),
        (0, {"min": 1, "max": 4}, False),
        ("600", {"max": 600}, True),  # numeric strings, as sshd -T prints them
        ("601", {"max": 600}, False),
        ("18446744073692774399", {"min": 18446744073692774398}, True),  # beyond 2^53, exact
        ("18446744073692774399", {"max": 18446744073692774398}, False),
        (2.5, {"min": 2, "max": 3}, True),
        ("abc", {"min": 1}, False),
        (None, {"min": 1}, False),
        (True, {"min": 0}, False),  # a bool is not a number
        ("nan", {"min": 0}, False),
        (24105, {"value": {"min": 513000, "max": 516096}}, False),  # bounds from value_from
        (514000, {"value": {"min": 513000, "max": 516096}}, True),
    ],
)
def test_range(observed: Any, expect: dict[str, Any], ok: bool) -> None:
    assert apply(observed, {"op": "range", **expect})[0] is ok


def test_range_reason_says_which_bound() -> None:
    _, low = apply(0, {"op": "range", "min": 1, "max": 4})
    _, high = apply(9, {"op": "range", "min": 1, "max": 4})
    assert low is not None and "below min" in low
    assert high is not None and "above max" in high


def test_range_without_bounds_is_malformed() -> None:
    with pytest.raises(ValueError, match="min or max"):
        apply(1, {"op": "range"})


# --- version --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "cmp", "value", "scheme", "ok"),
    [
        ("1:9.2p1-2+deb12u10", ">=", "1:9.2p1-2+deb12u5", "debian", True),  # u10 > u5
        ("1:9.2p1-2+deb12u3", ">=", "1:9.2p1-2+deb12u5", "debian", False),
        ("9.0.0-4+deb12u2", "==", "9.0.0-4+deb12u2", "debian", True),
        ("9.0.0-4", "<", "9.0.0-4+deb12u1", "debian", True),
        ("1.0~rc1", "<", "1.0", "debian", True),  # tilde sorts before the release
        ("2.0", ">", "1:1.0", "debian", False),  # epoch wins
        ("10.0", ">", "9.9", "pep440", True),  # numeric, not text order
        ("1.0rc1", "<", "1.0", "pep440", True),
        ("1.0", "!=", "1.0.0", "pep440", False),  # PEP 440 pads with zeros
        ("1.2.3-1.el9", ">", "1.2.3-1.el8", "rpm", True),
        ("1.10-1", ">", "1.9-1", "rpm", True),
        ("1.0-1", "<=", "1.0-1", "rpm", True),
    ],
)
def test_version(observed: str, cmp: str, value: str, scheme: str, ok: bool) -> None:
    expect = {"op": "version", "cmp": cmp, "value": value, "scheme": scheme}
    assert apply(observed, expect)[0] is ok


def test_version_of_a_missing_package_fails_and_says_so() -> None:
    ok, reason = apply(None, {"op": "version", "cmp": ">=", "value": "1.0", "scheme": "debian"})
    assert not ok and reason is not None and "no version" in reason


def test_version_invalid_under_scheme_fails_with_reason() -> None:
    ok, reason = apply(
        "not a version", {"op": "version", "cmp": ">=", "value": "1", "scheme": "pep440"}
    )
    assert not ok and reason is not None and "PEP 440" in reason


def test_version_unknown_cmp_is_malformed() -> None:
    with pytest.raises(ValueError, match="comparison"):
        apply("1", {"op": "version", "cmp": "=>", "value": "1", "scheme": "pep440"})


_debian_versions = st.builds(
    lambda epoch, parts, rev: (
        (f"{epoch}:" if epoch else "")
        + ".".join(map(str, parts))
        + (f"-{rev}" if rev is not None else "")
    ),
    st.integers(0, 3),
    st.lists(st.integers(0, 30), min_size=1, max_size=4),
    st.one_of(
        st.none(), st.integers(0, 9).map(str), st.sampled_from(["1+deb12u1", "1~bpo1", "2ubuntu1"])
    ),
)
_pep440_versions = st.lists(st.integers(0, 30), min_size=1, max_size=4).map(
    lambda parts: ".".join(map(str, parts))
)
_rpm_versions = st.builds(
    lambda parts, rel: ".".join(map(str, parts)) + f"-{rel}",
    st.lists(st.integers(0, 30), min_size=1, max_size=4),
    st.sampled_from(["1", "2", "1.el9", "10.el9_2"]),
)


@pytest.mark.parametrize(
    ("scheme", "strategy"),
    [("debian", _debian_versions), ("pep440", _pep440_versions), ("rpm", _rpm_versions)],
)
def test_version_ordering_is_consistent(scheme: str, strategy: st.SearchStrategy[str]) -> None:
    @given(strategy, strategy, strategy)
    def check(a: str, b: str, c: str) -> None:
        ab, ba = compare_versions(a, b, scheme), compare_versions(b, a, scheme)
        assert ab == -ba  # antisymmetric
        assert compare_versions(a, a, scheme) == 0  # reflexive
        if ab <= 0 and compare_versions(b, c, scheme) <= 0:
            assert compare_versions(a, c, scheme) <= 0  # transitive
        # The operators agree with the comparison, and exactly one of <, ==, > holds.
        holds = [
            apply(a, {"op": "version", "cmp": cmp, "value": b, "scheme": scheme})[0]
            for cmp in ("<", "==", ">")
        ]
        assert holds.count(True) == 1
        assert apply(a, {"op": "version", "cmp": "<=", "value": b, "scheme": scheme})[0] is (
            ab <= 0
        )
        assert apply(a, {"op": "version", "cmp": "!=", "value": b, "scheme": scheme})[0] is (
            ab != 0
        )

    check()


@given(st.integers(-(10**30), 10**30), st.integers(-(10**30), 10**30))
def test_range_on_integers_and_their_strings_agree(value: int, bound: int) -> None:
    as_int = apply(value, {"op": "range", "min": bound})[0]
    as_text = apply(str(value), {"op": "range", "min": bound})[0]
    assert as_int is as_text is (value >= bound)


@given(st.one_of(st.integers(), st.text(max_size=10), st.booleans(), st.none()))
def test_equals_is_reflexive_and_symmetric(value: Any) -> None:
    assert scalar_equal(value, value)
    for other in (0, 1, "1", "", None, True):
        assert scalar_equal(value, other) is scalar_equal(other, value)


def test_to_number_rejects_non_numbers() -> None:
    assert to_number("42") == 42
    assert to_number(" 7 ") == 7
    assert to_number(True) is None
    assert to_number("inf") is None
    assert to_number([1]) is None


# --- malformed expectations and descriptions ------------------------------------------------


def test_unknown_op_is_malformed() -> None:
    with pytest.raises(ValueError, match="unknown expectation op"):
        apply(1, {"op": "equal", "value": 1})


def test_same_across_hosts_is_not_decided_per_host() -> None:
    with pytest.raises(ValueError, match="compare_across"):
        apply(1, {"op": "same_across_hosts", "group": "cluster"})


@pytest.mark.parametrize(
    ("expect", "error"),
    [
        ({"op": "equals", "value": 1}, None),
        ({"op": "equals", "value_from": "os_id"}, None),
        ({"op": "equals"}, "needs value"),
        ({"op": "nope"}, "unknown op"),
        ({"op": "in", "value": "x"}, "needs a list"),
        ({"op": "regex", "value": "("}, "bad pattern"),
        ({"op": "range"}, "needs min or max"),
        ({"op": "range", "min": "x"}, "not a number"),
        ({"op": "range", "value_from": "memory_mb"}, None),
        ({"op": "version", "value": "1", "cmp": "~", "scheme": "debian"}, "cmp"),
        ({"op": "version", "value": "1", "cmp": ">=", "scheme": "semver"}, "scheme"),
        ({"op": "absent"}, None),
    ],
)
def test_validate_expect(expect: dict[str, Any], error: str | None) -> None:
    problem = validate_expect(expect)
    if error is None:
        assert problem is None
    else:
        assert problem is not None and error in problem


@pytest.mark.parametrize(
    ("expect", "text"),
    [
        (
            {"op": "equals", "value": "12", "value_from": "os_version_id"},
            'equals "12" (vqual_expected.os_version_id)',
        ),
        ({"op": "in", "value": ["1", "2"]}, 'one of ["1", "2"]'),
        ({"op": "regex", "value": "a.*"}, "matches /a.*/"),
        ({"op": "contains", "value": "nosuid"}, 'contains "nosuid"'),
        ({"op": "absent"}, "absent or empty"),
        ({"op": "range", "min": 1, "max": 4}, "between 1 and 4 (inclusive)"),
        ({"op": "range", "max": 600}, "<= 600"),
        (
            {"op": "version", "cmp": ">=", "value": "9.0", "scheme": "debian"},
            "version >= 9.0 (debian)",
        ),
        ({"op": "same_across_hosts", "group": "cluster"}, "same on every host of cluster"),
    ],
)
def test_describe_expectation(expect: dict[str, Any], text: str) -> None:
    assert describe_expectation(expect) == text
