"""The results of a run: medians over rounds, ratios, and the Markdown report.

Every table row is the median over the rounds (requests/s, p50 and p99 each on its own); errors
are summed over the rounds; RSS growth is the worst round. A ratio compares like with like: a
proxied GET with the upstream's ``/echo/bench`` and the other proxies' proxied GET, a cached
health with the upstream's ``/health`` and the other proxies' cached health.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .load import Sample, Transfer

STREAMING = "nginx-streaming"  # nginx with proxy_request_buffering off: uploads only
TARGETS = ("upstream", "gateway", "nginx", STREAMING, "reference")
LABELS = {
    "upstream": "upstream (stand-in, direct)",
    "gateway": "gateway",
    "nginx": "nginx",
    STREAMING: "nginx, streaming uploads (`proxy_request_buffering off`)",
    "reference": "FastAPI reference",
}
KINDS = ("proxied", "cached")
PATHS = {
    ("upstream", "proxied"): "/echo/bench",
    ("upstream", "cached"): "/health",
}
DEFAULT_PATHS = {"proxied": "/shub/echo/bench", "cached": "/shub/health"}

RequestKey = tuple[str, str, int]  # target, kind, connections
TransferKey = tuple[str, str]  # target, "download" | "upload"


def path_of(target: str, kind: str) -> str:
    return PATHS.get((target, kind), DEFAULT_PATHS[kind])


def transfer_path(target: str, mode: str) -> str:
    """``/download`` (``?bytes=`` follows) or the echo's upload path, on the target's prefix."""
    prefix = "" if target == "upstream" else "/shub"
    return prefix + ("/download" if mode == "download" else "/echo/upload")


@dataclass
class Results:
    requests: dict[RequestKey, list[Sample]] = field(default_factory=dict)
    transfers: dict[TransferKey, list[Transfer]] = field(default_factory=dict)
    overload: dict[RequestKey, Sample] = field(default_factory=dict)
    # Each round's connections per worker (most first), sampled mid-run (bench/balance.py).
    balance: dict[RequestKey, list[list[int]]] = field(default_factory=dict)
    abuse: Any = None  # bench.abuse.Abuse, when measured

    def add(self, key: RequestKey, sample: Sample) -> None:
        self.requests.setdefault(key, []).append(sample)

    def add_transfer(self, key: TransferKey, transfer: Transfer) -> None:
        self.transfers.setdefault(key, []).append(transfer)

    def sample(self, key: RequestKey) -> Sample | None:
        return median_sample(self.requests.get(key, []))

    def transfer(self, key: TransferKey) -> Transfer | None:
        return median_transfer(self.transfers.get(key, []))


def median_sample(samples: list[Sample]) -> Sample | None:
    if not samples:
        return None
    good = [s for s in samples if not s.problem] or samples
    return Sample(
        rps=statistics.median(s.rps for s in good),
        p50_ms=statistics.median(s.p50_ms for s in good),
        p99_ms=statistics.median(s.p99_ms for s in good),
        requests=sum(s.requests for s in samples),
        http_errors=sum(s.http_errors for s in samples),
        socket_errors=sum(s.socket_errors for s in samples),
        problem="; ".join(sorted({s.problem for s in samples if s.problem})),
    )


def median_transfer(transfers: list[Transfer]) -> Transfer | None:
    if not transfers:
        return None
    good = [t for t in transfers if not t.problem]
    return Transfer(
        mib_s=statistics.median(t.mib_s for t in good) if good else 0.0,
        peak_growth_mib=max(t.peak_growth_mib for t in transfers),
        retained_mib=max(t.retained_mib for t in transfers),
        problem="; ".join(sorted({t.problem for t in transfers if t.problem})),
    )


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "—"


def _errors(sample: Sample) -> str:
    return f"{sample.http_errors} / {sample.socket_errors}"


def requests_table(results: Results, connections: tuple[int, ...]) -> list[str]:
    lines = [
        "| what | target | path | conns | req/s | p50 ms | p99 ms | errors (HTTP / socket) "
        "| x upstream | x nginx | x reference |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind in KINDS:
        for conns in connections:
            bases = {
                t: results.sample((t, kind, conns)) for t in ("upstream", "nginx", "reference")
            }
            for target in TARGETS:
                sample = results.sample((target, kind, conns))
                if sample is None:
                    continue
                what = "proxied GET" if kind == "proxied" else "cached health"
                row = [what, LABELS[target], f"`{path_of(target, kind)}`", str(conns)]
                if sample.problem and not sample.requests:
                    lines.append("| " + " | ".join(row) + f" | failed: {sample.problem} |||||||")
                    continue
                row += [f"{sample.rps:,.0f}", f"{sample.p50_ms:.2f}", f"{sample.p99_ms:.2f}",
                        _errors(sample)]  # fmt: skip
                for base_target, base in bases.items():
                    same = base_target == target
                    row.append("—" if same or base is None else ratio(sample.rps, base.rps))
                lines.append("| " + " | ".join(row) + " |")
    return lines


def _mib(value: float) -> str:
    return f"{value:+.1f} MiB"


def transfer_table(results: Results, download: int, upload: int) -> list[str]:
    lines = [
        f"| target | {download // (1024 * 1024)} MiB download MiB/s | x nginx | RSS peak (kept) "
        f"| {upload // (1024 * 1024)} MiB upload MiB/s | x nginx | RSS peak (kept) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    nginx = {mode: results.transfer(("nginx", mode)) for mode in ("download", "upload")}
    for target in TARGETS:
        row = [LABELS[target]]
        for mode in ("download", "upload"):
            transfer = results.transfer((target, mode))
            if transfer is None:
                row += ["—", "—", "—"]
                continue
            base = nginx[mode]
            speed = f"{transfer.mib_s:,.0f}" if transfer.mib_s else f"failed: {transfer.problem}"
            if transfer.problem and transfer.mib_s:
                speed += f" (some rounds failed: {transfer.problem})"
            versus = (
                "—" if target == "nginx" else ratio(transfer.mib_s, base.mib_s if base else None)
            )
            memory = f"{_mib(transfer.peak_growth_mib)} ({_mib(transfer.retained_mib)})"
            row += [speed, versus, memory]
        if any(cell != "—" for cell in row[1:]):
            lines.append("| " + " | ".join(row) + " |")
    return lines


def balance_table(results: Results) -> list[str]:
    """How the load's connections split across a server's workers, round by round, beside the
    req/s of the same run: an uneven split moves throughput from round to round."""
    lines = ["| target | path | conns | connections per worker, by round | req/s by round "
             "| spread (max/min) |", "|---|---|--:|---|---|--:|"]  # fmt: skip
    for key, splits in results.balance.items():
        target, kind, conns = key
        rates = [s.rps for s in results.requests.get(key, []) if s.requests]
        spread = f"{max(rates) / min(rates):.2f}x" if len(rates) > 1 and min(rates) else "—"
        each = ", ".join("/".join(map(str, split)) for split in splits)
        lines.append(
            f"| {LABELS.get(target, target)} | `{path_of(target, kind)}` | {conns} | {each} "
            f"| {', '.join(f'{r:,.0f}' for r in rates)} | {spread} |"
        )
    return lines if results.balance else []


def overload_table(results: Results) -> list[str]:
    lines = [
        "| target | path | conns | req/s | p50 ms | p99 ms | HTTP errors | socket errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for (target, kind, conns), s in results.overload.items():
        detail = f" ({s.problem})" if s.problem else ""
        lines.append(
            f"| {LABELS[target]} | `{path_of(target, kind)}` | {conns} | {s.rps:,.0f} "
            f"| {s.p50_ms:.2f} | {s.p99_ms:.2f} | {s.http_errors} | {s.socket_errors}{detail} |"
        )
    return lines


@dataclass(frozen=True)
class Goal:
    """One of the targets: what it asks, what this run measured, whether it holds."""

    wanted: str
    measured: str
    met: bool | None  # None: not measurable in this run (a reference or a row missing)


def _rps(results: Results, target: str, kind: str, conns: int) -> float | None:
    sample = results.sample((target, kind, conns))
    return sample.rps if sample and sample.requests else None


def _speed_ratio(results: Results, mode: str) -> float | None:
    ours, nginx = results.transfer(("gateway", mode)), results.transfer(("nginx", mode))
    return ours.mib_s / nginx.mib_s if ours and nginx and ours.mib_s and nginx.mib_s else None


def _paired(results: Results, kind: str, conns: int) -> str:
    """The gateway/reference ratio of each round (the two ran back to back): shown beside the
    ratio of medians, which is what decides."""
    ours = results.requests.get(("gateway", kind, conns), [])
    theirs = results.requests.get(("reference", kind, conns), [])
    ratios = [a.rps / b.rps for a, b in zip(ours, theirs, strict=False) if a.requests and b.rps]
    if len(ratios) < 2:
        return ""
    each = ", ".join(f"{r:.2f}x" for r in ratios)
    return f" (round by round: {each}; median {statistics.median(ratios):.2f}x)"


def _at_least(
    wanted: str, value: float | None, bound: float, unit: str = "x", note: str = ""
) -> Goal:
    measured = "not measured" if value is None else f"{value:.2f}{unit}{note}"
    return Goal(wanted, measured, None if value is None else value >= bound)


def _at_most(wanted: str, value: float | None, bound: float, unit: str) -> Goal:
    measured = "not measured" if value is None else f"{value:.2f}{unit}"
    return Goal(wanted, measured, None if value is None else value <= bound)


def goals(results: Results, high: int) -> list[Goal]:
    """Issue 18's targets, for the gateway as deployed (every feature on)."""
    gw, ref = _rps(results, "gateway", "proxied", high), _rps(results, "reference", "proxied", high)
    gw_hit, ref_hit, nginx_hit = (
        _rps(results, t, "cached", high) for t in ("gateway", "reference", "nginx")
    )
    ours, direct = (
        results.sample(("gateway", "proxied", 1)),
        results.sample(("upstream", "proxied", 1)),
    )
    added = ours.p50_ms - direct.p50_ms if ours and direct and ours.requests else None
    download = results.transfer(("gateway", "download"))
    upload, streaming = (
        results.transfer(("gateway", "upload")),
        results.transfer((STREAMING, "upload")),
    )
    versus_streaming = (
        upload.mib_s / streaming.mib_s if upload and streaming and streaming.mib_s else None
    )
    goals_ = [
        _at_least(f"proxied GET at {high} conns ≥ 3.5x the reference's req/s",
                  gw / ref if gw and ref else None, 3.5, note=_paired(results, "proxied", high)),
        _at_most("gateway-added p50 at 1 conn ≤ 0.6 ms over the upstream", added, 0.6, " ms"),
        _at_least(f"cached /shub/health at {high} conns ≥ 2.0x the reference's cached endpoint",
                  gw_hit / ref_hit if gw_hit and ref_hit else None, 2.0,
                  note=_paired(results, "cached", high)),
        _at_least(f"cached /shub/health at {high} conns ≥ 0.3x nginx's proxy_cache",
                  gw_hit / nginx_hit if gw_hit and nginx_hit else None, 0.3),
        _at_least("download ≥ 1.0x nginx's MiB/s", _speed_ratio(results, "download"), 1.0),
        _at_most("download RSS growth ≤ 16 MiB (peak, worst worker)",
                 download.peak_growth_mib if download else None, 16.0, " MiB"),
        _at_least("upload ≥ 1.0x nginx's MiB/s (default request buffering)",
                  _speed_ratio(results, "upload"), 1.0),
        _at_least("upload ≥ 0.7x an nginx streaming uploads (proxy_request_buffering off)",
                  versus_streaming, 0.7),
    ]  # fmt: skip
    for conns in sorted({c for (t, _, c) in results.overload if t == "gateway"}):
        runs = [s for (t, _, c), s in results.overload.items() if t == "gateway" and c == conns]
        errors = sum(s.http_errors + s.socket_errors for s in runs)
        goals_.append(Goal(f"no errors at {conns:,} connections", f"{errors} errors", errors == 0))
    return goals_


def goals_table(results: Results, high: int) -> list[str]:
    lines = ["| issue 18 target | measured | holds |", "|---|--:|---|"]
    for goal in goals(results, high):
        holds = {True: "yes", False: "**no**", None: "n/a"}[goal.met]
        lines.append(f"| {goal.wanted} | {goal.measured} | {holds} |")
    return lines


def features_table(results: Results, variants: list[str], conns: int) -> list[str]:
    """Each feature's cost: the gateway's req/s over the variant's without it, per round and
    as the ratio of medians."""
    rows = []
    for variant in variants:
        if not any(results.requests.get((variant, kind, conns)) for kind in KINDS):
            continue  # not run (--features)
        cells = []
        for kind in KINDS:
            with_ = results.requests.get(("gateway", kind, conns), [])
            without = results.requests.get((variant, kind, conns), [])
            if not with_ or not without:
                cells.append("—")
                continue
            rounds = ", ".join(
                f"{a.rps / b.rps:.2f}x" for a, b in zip(with_, without, strict=False) if b.rps
            )
            median_with, median_without = median_sample(with_), median_sample(without)
            if median_with is None or median_without is None or not median_without.rps:
                cells.append("—")
                continue
            ratio = median_with.rps / median_without.rps
            cells.append(f"{ratio:.2f}x ({median_without.rps:,.0f} req/s without; rounds {rounds})")
        rows.append(f"| {variant.removeprefix('gateway without ')} | {cells[0]} | {cells[1]} |")
    if not rows:
        return []
    return ["| feature | proxied GET | cached /shub/health |", "|---|--:|--:|", *rows]
