"""The one exception family costmodel raises for bad input.

Every error says which field (or name) is wrong and how to fix it. The CLI and the dashboard show
``str(error)`` as is, so the message must read well on its own, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pydantic import ValidationError


class CostmodelError(ValueError):
    """Bad input to costmodel: an unknown name, an invalid profile, a malformed file."""


class UnknownNameError(CostmodelError, KeyError):
    """A model, hardware or dtype name that is not known; the message suggests the closest ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        query = name.lower()
        prefixed = [k for k in known if k.startswith(query)]
        close = list(dict.fromkeys(prefixed + difflib.get_close_matches(query, known, n=3, cutoff=0.5)))[:3]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        message = f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}."
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


def describe_validation_error(error: ValidationError, what: str) -> str:
    """One readable line from a pydantic error: each failing field with the reason."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(profile)"
        reason = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            reason = "unknown field (check the spelling; see the profile docs for the allowed fields)"
        elif item["type"] == "missing":
            reason = "required field is missing"
        lines.append(f"{field}: {' '.join(reason.split())}")
    return f"invalid {what}: " + "; ".join(lines)  # one line, whatever the number of fields
