"""The parameter checks every check type shares (qualification.checks.base)."""

from __future__ import annotations

from qualification.checks.base import one_of, unknown_params


def test_unknown_params_names_each_unknown_one_and_what_is_allowed() -> None:
    assert unknown_params("vsphere_host", {"field": "x"}, {"field"}) is None
    assert unknown_params("vsphere_host", {}, {"field"}) is None
    assert unknown_params("vsphere_host", {"feild": 1, "b": 2, "field": 3}, {"field", "host"}) == (
        "vsphere_host: unknown parameter(s) b, feild (allowed: field, host)"
    )


def test_one_of_names_the_parameter_and_the_options_in_their_order() -> None:
    assert one_of("libvirt_pool", "state", "running", ("running", "inactive")) is None
    assert one_of("libvirt_pool", "state", "up", ("running", "inactive")) == (
        "libvirt_pool: parameter state must be one of running, inactive"
    )
    assert one_of("x", "field", None, ["a"]) == "x: parameter field must be one of a"
