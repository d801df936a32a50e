"""The statements a notebook's prose makes about its own numbers, as checks over what the notebook records.

A `Claim` ties one sentence of a notebook's markdown ("the baseline loses about half of its mAP at full strength")
to an expression over the values the notebook records with `workbench.utils.record()` and a `Bound` with the
tolerance the wording allows. `tests/test_claims.py` holds the table and checks it on the cpu-demo entries of
`outputs/records.json` (`make claims`, after `make demo`); a statement that no longer holds fails by its name.

How wording becomes a tolerance (this workbench's convention):
- a number quoted to d decimals ("0.13", "about 0.6") holds within the rounding of its last digit (`rounds_to`);
- "about half", "about a third": the fraction within 20 % of itself (`about_fraction`: half is [0.4, 0.6]);
- "less than half", "most", "the lowest", "above": the strict comparison the words say (`below`, `above`).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.notebooks import read_records_file

# The profile and thread count of the run the notebooks' prose describes live in `utils`, so that `lab.setup` can warn
# a kernel on another count without a circle through `notebooks`; claims checks records against them.
from workbench.utils import CLAIMED_PROFILE, CLAIMED_THREADS


@dataclass(frozen=True)
class Bound:
    """Where a claimed value must lie: `low`/`high` (None: unbounded), each inclusive unless `strict`; or exactly
    `equal` when given (lists and strings too)."""

    low: float | None = None
    high: float | None = None
    strict: bool = False
    equal: Any = None

    def holds(self, value: Any) -> bool:
        if self.equal is not None:
            return value == self.equal
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if self.strict:
            return (self.low is None or value > self.low) and (self.high is None or value < self.high)
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.equal is not None:
            return f"== {self.equal!r}"
        lt = "<" if self.strict else "<="
        if self.low is not None and self.high is not None:
            return f"{self.low:g} {lt} value {lt} {self.high:g}"
        return f"{'>' if self.strict else '>='} {self.low:g}" if self.low is not None else f"{lt} {self.high:g}"


def between(low: float, high: float) -> Bound:
    """low <= value <= high."""
    return Bound(low, high)


def below(high: float) -> Bound:
    """value < high ("less than", "lower than")."""
    return Bound(high=high, strict=True)


def above(low: float) -> Bound:
    """value > low ("more than", "higher", "most" of a share: above(0.5))."""
    return Bound(low=low, strict=True)


def at_most(high: float) -> Bound:
    return Bound(high=high)


def at_least(low: float) -> Bound:
    return Bound(low=low)


def equal(value: Any) -> Bound:
    """Exactly `value` (a count, a list of cameras)."""
    return Bound(equal=value)


def rounds_to(quoted: str) -> Bound:
    """A number as the prose quotes it ("0.13", "0.6", "1.00"): the values that round to it, i.e. within half a
    unit of its last digit (inclusive, so "0.6" admits [0.55, 0.65])."""
    from decimal import Decimal

    number = Decimal(quoted)
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)  # "0.13" -> 0.005
    return Bound(float(number - half), float(number + half))


def about_fraction(fraction: float, rel: float = 0.2) -> Bound:
    """"About half", "about a third": within `rel` of the fraction, relative (half: [0.4, 0.6])."""
    return Bound(fraction * (1 - rel), fraction * (1 + rel))


# What a claim's expression may use: arithmetic over record names and numbers, an element of a recorded list by its
# position (`levels[-1]`), and these functions.
FUNCTIONS = {"abs": abs, "min": min, "max": max, "len": len, "sorted": sorted}
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant, ast.Call, ast.List, ast.Tuple,
          ast.Subscript, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)


def expression_names(expression: str) -> list[str]:
    """The record names an expression reads, in order of first use.

    Raises:
        ValueError: the expression uses anything but arithmetic, numbers, names and `FUNCTIONS`.
    """
    tree = ast.parse(expression, mode="eval")
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, _NODES):
            raise ValueError(f"claim expression {expression!r} uses {type(node).__name__}; allowed: arithmetic over "
                             f"record names and numbers, and {sorted(FUNCTIONS)}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise ValueError(f"claim expression {expression!r} calls {ast.unparse(node.func)}; allowed: "
                             f"{sorted(FUNCTIONS)}")
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS and node.id not in names:
            names.append(node.id)
    return names


@dataclass(frozen=True)
class Claim:
    """One statement of a notebook's prose, checked against the notebook's records.

    Attributes:
        name: the test id; says what the statement claims (e.g. "baseline_loses_about_half_under_tir_shift").
        notebook: the notebook's stem ("05_sd2reid").
        quote: the sentence, or the part of it that makes the claim, as the notebook words it.
        value: an expression over the notebook's record names (`FUNCTIONS` allowed), e.g.
            "1 - sd2_style_baseline_mAP_max_level / sd2_style_baseline_mAP_level0".
        bound: where the value must lie for the statement to hold.
    """

    name: str
    notebook: str
    quote: str
    value: str
    bound: Bound

    def __post_init__(self) -> None:
        expression_names(self.value)  # refuse a malformed expression when the table is built

    @property
    def names(self) -> list[str]:
        return expression_names(self.value)

    def evaluate(self, records: dict[str, Any]) -> Any:
        """The claimed value computed from `records`.

        Raises:
            KeyError: a record name the expression reads is not in `records` (the message names it).
        """
        missing = [n for n in self.names if n not in records]
        if missing:
            raise KeyError(f"{self.notebook} recorded no {', '.join(missing)} (claim {self.name!r} reads them): "
                           f"record them with utils.record() in the notebook's last cell")
        scope = {"__builtins__": {}, **FUNCTIONS}
        return eval(compile(ast.parse(self.value, mode="eval"), "<claim>", "eval"), scope,  # noqa: S307
                    {n: records[n] for n in self.names})

    def failure(self, records: dict[str, Any]) -> str | None:
        """None when the statement holds on `records`; else why not, naming the claim, its sentence, each record
        it read and the value against its bound."""
        try:
            value = self.evaluate(records)
        except (KeyError, ZeroDivisionError, TypeError) as exc:
            return f"{self.notebook} · {self.name}: {exc.args[0] if exc.args else exc!r}"
        if self.bound.holds(value):
            return None
        read = ", ".join(f"{n} = {_short(records[n])}" for n in self.names)
        return (f"{self.notebook} · {self.name}: the prose says \"{self.quote}\", but {self.value} = {_short(value)} "
                f"(from {read}); the statement needs {self.bound}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def claim_records(entries: dict[str, dict], notebook: str, source: str | Path = "records.json") -> tuple[dict | None, str]:
    """The records a notebook's claims are checked against, from the runner's entries (`read_records_file`), or
    None and the reason they cannot be: no entry, a SMOKE run, an unknown run, another profile, or another thread
    count (an entry from before the runner recorded threads is checked)."""
    rerun = f"run `python -m workbench.notebooks run --only {notebook[:2]}` (no --smoke) on a CPU"
    entry = entries.get(notebook)
    if entry is None:
        return None, f"{source} has no entry for {notebook}: {rerun}"
    if entry["smoke"] is None:
        return None, f"{source} does not say whether {notebook} ran with SMOKE (written by an older runner): {rerun}"
    if entry["smoke"]:
        return None, f"{notebook} ran with SMOKE=True; its prose describes the {CLAIMED_PROFILE} numbers: {rerun}"
    if entry["profile"] != CLAIMED_PROFILE:
        return None, (f"{notebook} ran with the {entry['profile']!r} profile; its prose describes the "
                      f"{CLAIMED_PROFILE} numbers: {rerun}")
    threads = entry.get("threads")
    if threads is not None and threads != CLAIMED_THREADS:
        return None, (f"{notebook} ran on {threads} threads; its prose describes the numbers of {CLAIMED_THREADS} "
                      f"(the thread count moves trained numbers by about their noise): run `make demo`, which pins "
                      f"OMP_NUM_THREADS={CLAIMED_THREADS}")
    return entry["records"], ""


def load_claim_records(path: str | Path) -> tuple[dict[str, dict], str]:
    """The runner's entries in `path`, or {} and why there are none (the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return {}, f"no {path}: run `make demo` (or `python -m workbench.notebooks run`) first"
    return read_records_file(path), ""


def recordable_names(notebook: str | Path) -> list[str]:
    """Patterns (regular expressions) of the names a notebook's source can record: every string literal and
    f-string (its fields as `.+`) in the code cells that call `record(`. A claim that reads a name matching none
    of them reads something the notebook never records."""
    import json
    import re

    patterns = []
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "record(" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                patterns.append(re.escape(node.value))
            elif isinstance(node, ast.JoinedStr):
                patterns.append("".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+"
                                        for v in node.values))
    return patterns
