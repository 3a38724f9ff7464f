"""Running a qualification: the glue between the plan, the probes, the checks and the evidence.

Everything here is pure Python and never imports ``ansible``: the collection's action and
callback plugins hand their data to these functions and keep no logic of their own.
"""
