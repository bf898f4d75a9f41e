"""Shared bits of the command line."""

EXIT_BAD_INPUT = 2
