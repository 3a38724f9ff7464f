"""The test lab: real targets on this machine, all on 127.0.0.0/8 (see docs/lab.md).

``manager`` brings components up and down and writes ``inventories/lab/``; ``component``
holds the contract every component keeps.
"""
