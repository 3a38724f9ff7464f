"""A patch-only platform plug-in for tests of the rolling_patch action (tests/integration/test_aap_rolling_patch.py)."""
