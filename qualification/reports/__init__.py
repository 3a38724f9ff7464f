"""Renderings of a run's evidence: JUnit XML, the HTML (and PDF) report, traceability."""
