"""``python -m qualification.cli``: the ``vqual`` command."""

from qualification.cli import main

main()
