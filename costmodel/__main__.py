"""``python -m costmodel`` runs the command line."""

from costmodel.cli import main

main()
