"""Just enough of PromQL's grammar to say which series and labels an expression reads, and
through which function: the tests hold the rules and the dashboard to the metrics contract with
it. Prometheus itself (promtool, or a real server) judges whether an expression is valid."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      |(?P<range>\[[^\]]*\])
      |(?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*\b)
      |(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      |(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>,(){}@])
      |(?P<space>\s+)""",
    re.X,
)
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}  # fmt: skip
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"} | LABEL_LISTS


@dataclass(frozen=True)
class Selector:
    """One series selector: ``metric{label op "value", ...}[range]``, and the function it is
    passed to directly (``rate``), if any."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...]
    is_range: bool
    function: str | None


@dataclass
class Expression:
    selectors: list[Selector] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)  # in matchers and in by/on/... lists
    functions: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read {expr[position : position + 20]!r} in {expr!r}")
        if match.lastgroup != "space":
            found.append((str(match.lastgroup), match.group()))
        position = match.end()
    return found


def parse(expr: str) -> Expression:
    parsed = Expression()
    toks = tokens(expr)
    stack: list[str | None] = []  # per open "(": the function called, None for a group
    label_list_depth: list[bool] = []  # per open "(": is it a by/on/... label list
    pending_aggregation: str | None = None
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if text == "(":
            previous = toks[i - 1][1].lower() if i else ""
            is_list = previous in LABEL_LISTS
            label_list_depth.append(is_list)
            if is_list:
                stack.append(None)
            elif i and toks[i - 1][0] == "ident" and previous not in KEYWORDS:
                stack.append(toks[i - 1][1])
                pending_aggregation = None
            elif pending_aggregation is not None and previous == ")":
                stack.append(pending_aggregation)
                pending_aggregation = None
            else:
                stack.append(None)
        elif text == ")":
            if not stack:
                raise ValueError(f"unbalanced ) in {expr!r}")
            stack.pop()
            label_list_depth.pop()
        elif kind == "ident" and label_list_depth and label_list_depth[-1]:
            parsed.labels.add(text)
        elif kind == "ident" and text.lower() in KEYWORDS:
            pass
        elif kind == "ident" and (following == "(" or text in AGGREGATIONS):
            parsed.functions.add(text)
            if text in AGGREGATIONS and following != "(":
                pending_aggregation = text
        elif kind == "ident" or text == "{":
            i = _selector(toks, i, stack[-1] if stack else None, parsed)
            continue
        i += 1
    if stack:
        raise ValueError(f"unbalanced ( in {expr!r}")
    return parsed


def _selector(toks: list[tuple[str, str]], i: int, function: str | None, into: Expression) -> int:
    """Reads the selector starting at ``toks[i]``; returns the index after it."""
    metric = ""
    if toks[i][0] == "ident":
        metric = toks[i][1]
        i += 1
    matchers = []
    if i < len(toks) and toks[i][1] == "{":
        i += 1
        while toks[i][1] != "}":
            if toks[i][1] == ",":
                i += 1
                continue
            (_, label), (_, op), (value_kind, value) = toks[i : i + 3]
            if value_kind != "string":
                raise ValueError(f"expected a quoted value after {label}{op}")
            matchers.append((label, op, value[1:-1]))
            into.labels.add(label)
            i += 3
        i += 1
    is_range = i < len(toks) and toks[i][0] == "range"
    if not metric:  # {__name__="..."}
        metric = next((v for label, op, v in matchers if label == "__name__" and op == "="), "")
    into.selectors.append(Selector(metric, tuple(matchers), is_range, function))
    return i + 1 if is_range else i
