"""The simulators' ``--faults`` language: fault kinds, rules, options and the parser.

:func:`parse_faults` turns a ``--faults`` value into :class:`Faults`; the fault
injector (``_base.FaultInjector``) applies them.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Final

import attrs

#: Every fault kind ``--faults`` understands.
FAULT_KINDS: Final = (
    "429",
    "500",
    "502",
    "503",
    "reset",
    "slow",
    "malformed",
    "html",
    "unknown_status",
    "backwards",
)


@attrs.frozen
class FaultRule:
    """One kind of fault, injected at a rate or on given request numbers."""

    kind: str = attrs.field(validator=attrs.validators.in_(FAULT_KINDS))
    #: Probability per eligible request (0..1), drawn from the seeded RNG.
    rate: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    #: 1-based numbers of eligible requests that get this fault.
    at: tuple[int, ...] = ()


@attrs.frozen(kw_only=True)
class Faults:
    """What to inject, parsed from ``--faults`` or built in Python.

    Only one fault applies to a request: rules are tried in order.
    """

    rules: tuple[FaultRule, ...] = ()
    #: ``Retry-After`` seconds sent with injected 429s (and 503s).
    retry_after: float = 1.0
    #: Extra latency of a ``slow`` response, in seconds.
    delay: float = 0.5
    #: ``"get"``: only GET requests (polls, results, lists) get faults;
    #: ``"all"``: submissions and cancels too.
    scope: str = attrs.field(
        default="get", validator=attrs.validators.in_(("get", "all"))
    )

    @property
    def active(self) -> bool:
        """Whether any rule can fire."""
        return any(r.rate > 0 or r.at for r in self.rules)


#: How to write ``--faults``; every parse error ends with it.
FAULT_SYNTAX: Final = (
    "Use KIND (every request), KIND:RATE (0 to 1), KIND@N[+M...] (the Nth, Mth "
    "request) or an option retry-after=SECONDS, delay=SECONDS, scope=get|all; "
    f"kinds: {', '.join(FAULT_KINDS)}"
)


def parse_faults(text: str) -> Faults:
    """Parse a ``--faults`` value.

    Comma-separated items: ``KIND`` (every eligible request), ``KIND:RATE``
    (probability per request, 0 to 1), ``KIND@N[+M...]`` (the Nth, Mth...
    eligible request), and options ``retry-after=SECONDS``, ``delay=SECONDS``,
    ``scope=get|all``. Example: ``429:0.1,reset@3,slow:0.05,delay=0.2,retry-after=1``.

    Raises:
        ValueError: naming the bad item, what is wrong with it, and the known kinds.
    """
    rules: list[FaultRule] = []
    options: dict[str, Any] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            if "=" in item:
                key, value = _fault_option(item)
                options[key] = value
            else:
                rules.append(_fault_rule(item))
        except ValueError as exc:
            msg = f"bad fault {item!r}: {exc}. {FAULT_SYNTAX}"
            raise ValueError(msg) from exc
    return Faults(rules=tuple(rules), **options)


def _fault_rule(item: str) -> FaultRule:
    kind, sep, arg = item.partition("@") if "@" in item else item.partition(":")
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        close = difflib.get_close_matches(kind, FAULT_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msg = f"unknown fault kind {kind!r}{hint}"
        raise ValueError(msg)
    if sep == "@":
        numbers = [n.strip() for n in arg.split("+")]
        if not all(n.isdigit() and int(n) >= 1 for n in numbers):
            msg = (
                f"request numbers are whole numbers from 1, joined by '+', not {arg!r}"
            )
            raise ValueError(msg)
        return FaultRule(kind, at=tuple(int(n) for n in numbers))
    if sep == ":":
        rate = _number(arg)
        if rate is None or not 0 <= rate <= 1:
            msg = f"a rate is a number from 0 to 1, not {arg!r}"
            raise ValueError(msg)
        return FaultRule(kind, rate=rate)
    return FaultRule(kind, rate=1.0)


def _fault_option(item: str) -> tuple[str, Any]:
    key, value = (part.strip() for part in item.split("=", 1))
    name = key.replace("-", "_")
    if name == "scope":
        if value not in ("get", "all"):
            msg = f"scope is 'get' or 'all', not {value!r}"
            raise ValueError(msg)
        return name, value
    if name not in ("retry_after", "delay"):
        msg = f"unknown option {key!r}"
        raise ValueError(msg)
    seconds = _number(value)
    if seconds is None or seconds < 0:
        msg = f"{key} is a number of seconds >= 0, not {value!r}"
        raise ValueError(msg)
    return name, seconds


def _number(text: str) -> float | None:
    """Return ``text`` as a finite float, or ``None``."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
