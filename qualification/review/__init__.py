"""QA review: e-signatures on bundles, protocol approvals, deviations and the audit trail.

Everything here signs or checks with the trust store's roles; what outlives a run (approvals,
deviations and their waivers) lives in the state directory (docs/formats.md).
"""
