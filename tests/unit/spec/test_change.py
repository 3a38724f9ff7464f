"""Change ids and run ids: patterns, the safe-name rule, path traversal and look-alikes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualification.errors import EXIT_BAD_INPUT, BadInputError, ChangeIdError
from qualification.spec import (
    DEFAULT_CHANGE_PATTERN,
    is_safe_name,
    new_run_id,
    validate_change_id,
    validate_run_id,
)


def test_default_pattern_is_servicenow_style() -> None:
    assert DEFAULT_CHANGE_PATTERN == r"^CHG[0-9]{7}$"
    assert validate_change_id("CHG0012345") == "CHG0012345"


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_change_id(missing: str | None) -> None:
    with pytest.raises(ChangeIdError) as info:
        validate_change_id(missing)
    assert str(info.value) == "a change id is required (--change CHG0012345)"
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_mismatch_names_value_and_pattern() -> None:
    with pytest.raises(ChangeIdError) as info:
        validate_change_id("CHG12345")
    assert "'CHG12345'" in str(info.value)
    assert "'^CHG[0-9]{7}$'" in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "../CHG0000001",
        "CHG0000001/..",
        "CHG0000001/../x",
        "/CHG0000001",
        "CHG0000001\n",
        " CHG0000001",
        "CHG0000001\x00",
        "chg0000001",
        "CHG00000012",
        "\u0421HG0000001",  # Cyrillic capital ES looks like C
        "CHG\uff10000001",  # fullwidth digit zero
        "CHG\u0660000001",  # Arabic-Indic digit zero
        "CHG000000\u00b9",  # superscript one
    ],
)
def test_default_pattern_refuses_traversal_and_look_alikes(value: str) -> None:
    with pytest.raises(ChangeIdError):
        validate_change_id(value)


@pytest.mark.parametrize(
    "value",
    [".", "..", "../CHG1", "CHG1/..", "a/b", ".hidden", "-rf", "x" * 65, "CHG\u0660", "é1"],
)
def test_safe_name_rule_applies_whatever_the_pattern(value: str) -> None:
    with pytest.raises(ChangeIdError, match="not a safe name"):
        validate_change_id(value, pattern=r".*")


def test_user_pattern_digits_are_ascii_only() -> None:
    assert validate_change_id("CR-2026-0042", pattern=r"CR-\d{4}-\d{4}") == "CR-2026-0042"
    with pytest.raises(ChangeIdError, match="does not match"):
        validate_change_id("CR-\u0662\u0660\u0662\u0666-0042", pattern=r"CR-\d{4}-\d{4}")


def test_pattern_must_match_the_whole_value() -> None:
    with pytest.raises(ChangeIdError, match="does not match"):
        validate_change_id("CHG0000001x", pattern=r"CHG[0-9]{7}")


def test_invalid_pattern_is_bad_input() -> None:
    with pytest.raises(ChangeIdError, match="not a valid regular expression"):
        validate_change_id("CHG0000001", pattern=r"CHG[0-9")


@given(
    st.one_of(
        st.text(max_size=80),
        st.from_regex(r"[A-Za-z0-9.][A-Za-z0-9._/-]{0,70}", fullmatch=True),
    )
)
def test_any_accepted_change_id_is_one_plain_path_component(value: str) -> None:
    try:
        accepted = validate_change_id(value, pattern=r".*")
    except ChangeIdError:
        assert not is_safe_name(value)
        return
    assert accepted == value
    assert accepted.isascii()
    assert PurePosixPath(accepted).name == accepted
    assert accepted not in (".", "..")
    assert not accepted.startswith((".", "-"))


def test_run_id_rules() -> None:
    assert validate_run_id("20261126T032541Z-0a1b2c") == "20261126T032541Z-0a1b2c"
    assert validate_run_id("rerun-1") == "rerun-1"
    for bad in ["", ".", "..", "../x", "a/b", "x\n", "r\u0443n"]:
        with pytest.raises(BadInputError, match="run id"):
            validate_run_id(bad)


def test_new_run_id_uses_utc_start_time_and_random_suffix() -> None:
    cet = timezone(timedelta(hours=1))
    run_id = new_run_id(datetime(2026, 11, 26, 4, 25, 41, tzinfo=cet))
    assert re.fullmatch(r"20261126T032541Z-[0-9a-f]{6}", run_id)
    assert validate_run_id(run_id) == run_id
    ids = {new_run_id(datetime(2026, 1, 1, tzinfo=UTC)) for _ in range(20)}
    assert len(ids) > 1  # 24 random bits: 20 draws colliding into one is ~impossible


def test_new_run_id_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = datetime.strptime(new_run_id()[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= stamp <= datetime.now(UTC)


def test_new_run_id_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_run_id(datetime(2026, 1, 1))


def test_new_run_id_format() -> None:
    run_id = new_run_id()
    assert len(run_id) == 23 and run_id[8] == "T" and run_id[15] == "Z" and run_id[16] == "-"
