"""A shared link's parameters: what the page took from it, and what it ignored and why.

Streamlit binds each widget to the query parameter of the same name (``bind="query-params"``) and drops a
value its widget cannot take without a word (an unknown model, ``batch_size=-5``), and an integer input
fails outright on a non-finite number (``batch_size=1e400``). So on a session's first run :func:`read`
keeps the link's parameters and takes the non-finite numbers out of the URL before any widget reads them;
after the page has run, :func:`check` compares each parameter with what the page uses and names, in one
warning at the top of the page, every one it ignored, with the reason and the value used instead.

The reason for a scenario field is the :class:`~scenario.Scenario` record's own (costmodel's names and
bounds); for a page's own option it is that the page's widget did not take it; a name no widget on the
page reads is said to be unknown. Works for any page, including pages added later: it reads the widgets'
values, not a list of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import streamlit as st
from pydantic import ValidationError
from scenario import DEFAULT, MOE_FIELDS, WIDGET_FIELDS, Scenario

from costmodel.errors import describe_validation_error

_READ = "_link_read"
WARNINGS = "link_warnings"
"""Session-state key of the ignored parameters' notes (one line each), shown until dismissed."""
STREAMLIT_OWN = frozenset({"embed", "embed_options"})
"""Query parameters Streamlit itself reads: never ours to judge."""
LABELS: dict[str, Callable[[Any], str]] = {}
"""Widgets whose options are shown through a ``format_func`` (the Validation page's kernel family:
``All-reduce (all_reduce)``): Streamlit writes that label, not the value, into the URL, so a link holds the
label. Key -> the same function; a page registers it with :func:`labelled`."""
RENAMED = {"n_gpus": "GPUs are now TP × PP × replicas: give `replicas`"}
"""Parameters of earlier versions of the dashboard, with what replaced them."""


def labelled(key: str, format_func: Callable[[Any], str]) -> Callable[[Any], str]:
    """Register the ``format_func`` of the widget ``key`` (:data:`LABELS`) and return it, for the widget."""
    LABELS[key] = format_func
    return format_func


def read() -> dict[str, list[str]] | None:
    """The link's parameters on a session's first run (None on later runs), with every non-finite number
    (``inf``, ``nan``, ``1e400``) already taken out of the URL, so that no widget fails on one."""
    if st.session_state.get(_READ):
        return None
    st.session_state[_READ] = True
    link = {key: st.query_params.get_all(key) for key in st.query_params if key not in STREAMLIT_OWN}
    for key, raw in link.items():
        if any(_non_finite(value) for value in raw):
            del st.query_params[key]
            _forget_initial(key)
    return link


def _forget_initial(key: str) -> None:
    """Take ``key`` out of the URL snapshot Streamlit seeds widgets from on a session's first run (no
    public API reaches it; if a later Streamlit moves it, tests/test_app.py's 1e400 link fails)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return
    with ctx.session_state.query_params() as qp:
        initial = getattr(qp, "_initial_query_params", None)
        if isinstance(initial, dict):
            initial.pop(key, None)


def check(link: dict[str, list[str]] | None) -> None:
    """After the page ran: note each parameter of ``link`` the page did not use as given (kept in session
    state, so the notes stay on every page until dismissed)."""
    if link:
        notes = [note for key, raw in link.items() if (note := _ignored(key, raw))]
        if notes:
            st.session_state[WARNINGS] = notes


def show() -> None:
    """The notes of :func:`check`, as one warning with a button to dismiss them."""
    notes = st.session_state.get(WARNINGS)
    if not notes:
        return
    st.warning(
        "This link asked for values the dashboard cannot use; it ignored them:  \n"
        + "  \n".join(f"- {note}" for note in notes),
        icon=":material/link_off:",
    )
    st.button("Dismiss", key="dismiss_link_warnings", on_click=st.session_state.pop, args=(WARNINGS, None))


# ----------------------------------------------------------------------------------------------------


def _non_finite(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except (ValueError, OverflowError):
        return False


def _ignored(key: str, raw: list[str]) -> str | None:
    """One line naming ``key``, its value, the reason and the value used; None if the page used it."""
    from components import _sidebar_model_is_moe, from_query, plain

    given = plain(_shorten(", ".join(raw)))
    if key in RENAMED:
        return f"**{plain(key)}** = {given}: not a parameter any more. {RENAMED[key]}."
    if key in MOE_FIELDS and key not in st.session_state and not _sidebar_model_is_moe():
        default = plain(_shown(getattr(DEFAULT, key)) or "as the rest")
        return f"**{key}** = {given}: for mixture-of-experts models only; this one is dense. Using {default}."
    if key in WIDGET_FIELDS:
        if key in st.session_state:  # a widget of this page
            used = st.session_state[key]
        else:  # another page's option: what the scenario takes from the URL
            used = from_query(key)
            used = getattr(DEFAULT, key) if used is None else used
        reason = _scenario_reason(key, raw)
        if reason is None and _same(raw, used):
            return None
        why = _sentence(reason or "not a value this page's input takes")
        return f"**{key}** = {given}: {plain(why)} Using {plain(_shorten(_shown(used)))}."
    if key in st.session_state and not key.startswith("_"):  # a widget of this page
        used = st.session_state[key]
        if _same(raw, used) or (key in LABELS and raw[-1] == LABELS[key](used)):
            return None
        return (
            f"**{plain(key)}** = {given}: not a value this page's input takes (out of its range or not one "
            f"of its options). Using {plain(_shorten(_shown(used)))}."
        )
    return f"**{plain(_shorten(key))}** = {given}: not an input of this page (unknown name)."


def _scenario_reason(key: str, raw: list[str]) -> str | None:
    """Why the Scenario record refuses ``raw`` for ``key`` (None if it takes it as text or as JSON)."""
    if any(_non_finite(text) for text in raw):
        return "not a finite number"
    candidates: list[Any] = [list(raw)] if key == "hardware" else [raw[-1]]
    if key != "hardware":
        with suppress(ValueError):
            candidates.append(json.loads(raw[-1]))  # "2" -> 2, "false" -> False
    reason = "unreadable"
    for value in candidates:
        try:
            Scenario.model_validate({key: value})
        except ValidationError as e:
            reason = describe_validation_error(e, "link").removeprefix("invalid link: ")
            reason = reason.removeprefix(f"{key}: ").split(" Known: ")[0]  # the suggestions, not the list
            continue
        return None
    return reason


def _same(raw: list[str], used: Any) -> bool:
    """Whether the URL's text ``raw`` is the value ``used`` (as a widget reads it: 8, 8.0, true, a list)."""
    if isinstance(used, list | tuple):
        return set(raw) == {str(v) for v in used}
    text = raw[-1]
    if isinstance(used, bool):
        return text.lower() == str(used).lower()
    if isinstance(used, int | float):
        try:
            return math.isfinite(float(text)) and float(text) == used
        except ValueError:
            return False
    return text == ("" if used is None else str(used))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _shown(value: Any) -> str:
    if value is None:  # an empty input (a placeholder such as "the engine's default")
        return "the input's default (empty)"
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
