"""`make bench`: the gateway against the upstream, nginx and a FastAPI reference, same machine,
same run. A measurement, not a test: it exits 0 whatever the numbers.

It starts the stand-in upstream, a private Redis, the gateway as deployed (gunicorn, uvicorn
workers, gunicorn.conf.py), nginx when installed (reverse proxy + proxy_cache) and the FastAPI +
httpx + redis.asyncio reference (same gunicorn settings), then runs interleaved rounds: in each
round every target in turn (upstream, gateway, nginx, reference) for each scenario, so drift of
the machine hits all alike; the table shows the median of the rounds. Load comes from ``wrk``
(or ``bench/loadgen.py``) and transfers from ``bench/transfer.py``, each in its own process.
The report is printed and written to bench/results/latest.md.

    python bench/run.py [--rounds 3] [--duration 4] [--loader auto|wrk|python]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib
import dataclasses
import resource
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass

from bench import abuse, balance, environment, features, load, memory, report, scraper, services
from bench.services import Service
from bench.settings import Settings, parse_args, settings_lines

RESULTS = services.BENCH / "results" / "latest.md"
LOGS = services.BENCH / "results" / "logs"
GUNICORN = frozenset({"gateway", "reference"})  # nginx's helper processes come and go
# Whose split of connections across workers the report shows: the deployed gateway beside the
# same one with a single shared socket (and the reference, which shares one).
BALANCED = GUNICORN | {"gateway without per-worker listeners"}
INSTALL = {"nginx": "apt-get install nginx", "reference": "pip install -r bench/requirements.txt"}


@dataclass(frozen=True)
class Target:
    """One server under test; ``token`` is sent as X-VX11-GW-TOKEN (None for the upstream)."""

    name: str
    service: Service
    token: str | None

    def url(self, path: str) -> str:
        return self.service.base + path

    def workers(self) -> list[int]:
        return memory.workers_of(self.service.process.pid)


Endpoint = tuple[Target, str]  # target, kind ("proxied" | "cached")


def start_targets(
    stack: contextlib.ExitStack, workdir: Path, settings: Settings, token: str
) -> tuple[list[Target], list[str]]:
    """Start every server; the list holds what runs, the notes say what was skipped and why."""
    notes: list[str] = []
    # The gateway signs for shub's EntryGuard, against a stand-in that checks it; what does
    # not sign (the other proxies, the gateway without signing) has a stand-in that checks
    # nothing, and the upstream rows measure that one.
    upstream = stack.enter_context(services.standin(workdir))
    guard_secret = secrets.token_hex(32)
    strict = stack.enter_context(
        services.standin(workdir, entryguard_secret=guard_secret, name="upstream-strict")
    )
    redis = stack.enter_context(services.redis(workdir))
    redis_url = f"redis://127.0.0.1:{redis.port}" if redis else ""
    if redis is None:
        notes.append("redis-server is not installed: no Redis for the gateway or the reference")
    gateway = services.gateway(
        strict.base, redis_url and redis_url + "/0", token, secrets.token_urlsafe(50),
        settings.workers, workdir, entryguard_secret=guard_secret,
    )  # fmt: skip
    targets = [
        Target("upstream", upstream, None),
        Target("gateway", stack.enter_context(gateway), token),
    ]
    if "features" not in settings.skip:
        for number, variant in enumerate(features.VARIANTS, 1):
            if variant.feature not in settings.features:
                continue
            signs = variant.env.get("VX11_ENTRYGUARD_ENABLED") != "false"
            without = services.gateway(
                (strict if signs else upstream).base, redis_url and redis_url + "/0", token,
                secrets.token_urlsafe(50), settings.workers, workdir,
                name=f"gateway-variant-{number}", extra=variant.env, entryguard_secret=guard_secret,
            )  # fmt: skip
            targets.append(Target(variant.target, stack.enter_context(without), token))
    for name in ("nginx", "reference"):
        if name in settings.skip:
            notes.append(f"{name} skipped (--skip)")
        elif service := stack.enter_context(
            _optional(name, upstream, redis_url, token, settings.workers, workdir)
        ):
            targets.append(Target(name, service, token))
            if service.streaming_port:
                streaming = dataclasses.replace(service, port=service.streaming_port)
                targets.append(Target(report.STREAMING, streaming, token))
        else:
            notes.append(f"{name} is not installed ({INSTALL[name]}): its rows are skipped")
    return targets, notes


def _optional(
    name: str, upstream: Service, redis_url: str, token: str, workers: int, workdir: Path
) -> contextlib.AbstractContextManager[Service | None]:
    if name == "nginx":
        return services.nginx(upstream.port, token, workers, workdir)
    if not environment.has_module("fastapi"):
        return contextlib.nullcontext()
    db1 = redis_url and redis_url + "/1"
    return services.reference(upstream.base, db1, token, workers, workdir)


def probe(targets: list[Target]) -> tuple[list[Endpoint], list[str]]:
    """The endpoints that answer 200 (the cached ones asked twice, to fill the cache)."""
    endpoints: list[Endpoint] = []
    notes: list[str] = []
    for target in (t for t in targets if t.name != report.STREAMING):  # uploads only
        headers = {"X-VX11-GW-TOKEN": target.token} if target.token else {}
        for kind in report.KINDS:
            url = target.url(report.path_of(target.name, kind))
            services.fetch(url, 5.0, headers)
            status, answer = services.fetch(url, 5.0, headers)
            if status != 200:
                notes.append(f"{target.name} {url} answered {status or 'nothing'}: row skipped")
                continue
            endpoints.append((target, kind))
            if kind == "cached" and target.name != "upstream":
                cache = answer.get("x-cache") or "no X-Cache header (not cached?)"
                notes.append(f"{target.name} `{report.path_of(target.name, kind)}`: {cache}")
    return endpoints, notes


def _load(endpoint: Endpoint, connections: int, duration: float, settings: Settings) -> load.Sample:
    target, kind = endpoint
    url = target.url(report.path_of(target.name, kind))
    return load.run_load(
        settings.loader, url, connections=connections, duration=duration, token=target.token
    )


def _transfer(target: Target, mode: str, settings: Settings) -> load.Transfer:
    url = target.url(report.transfer_path(target.name, mode))
    size = settings.download_bytes if mode == "download" else settings.upload_bytes
    if mode == "download":
        url += f"?bytes={size}"
    return load.run_transfer(mode, url, size=size, token=target.token, workers=target.workers)


def run_round(
    number: int, endpoints: list[Endpoint], targets: list[Target], settings: Settings,
    results: report.Results, notes: list[str],
) -> None:  # fmt: skip
    """One round: each scenario on every target in turn (A B C D), then the transfers."""
    for connections in settings.connections:
        for kind in report.KINDS:
            for endpoint in (e for e in endpoints if e[1] == kind):
                if _variant(endpoint[0]) and connections != max(settings.connections):
                    continue  # a feature's cost is measured at the high concurrency only
                what = f"{endpoint[0].name} {kind} c{connections}"
                workers = endpoint[0].workers()
                key = (endpoint[0].name, kind, connections)
                watched = endpoint[0].name in BALANCED and connections > 1
                port = endpoint[0].service.port
                with balance.Sampler(port, workers, settings.duration / 2) as split:
                    sample = _load(endpoint, connections, settings.duration, settings)
                results.add(key, sample)
                if watched and split.result:
                    results.balance.setdefault(key, []).append(split.result)
                _progress(number, what, _brief(sample))
                if endpoint[0].name in GUNICORN and endpoint[0].workers() != workers:
                    notes.append(f"round {number}, {what}: workers were replaced during the run "
                                 "(gunicorn max_requests? see the server logs)")  # fmt: skip
    for mode in ("download", "upload"):
        for target in (t for t in targets if not _variant(t)):
            if target.name == report.STREAMING and mode == "download":
                continue  # it differs from nginx in uploads only
            transfer = _transfer(target, mode, settings)
            results.add_transfer((target.name, mode), transfer)
            brief = transfer.problem or f"{transfer.mib_s:,.0f} MiB/s"
            rss = f"RSS {transfer.peak_growth_mib:+.1f} MiB"
            _progress(number, f"{target.name} {mode}", f"{brief}, {rss}")


def _variant(target: Target) -> bool:
    return target.name.startswith("gateway without ")


def _brief(sample: load.Sample) -> str:
    if sample.problem:
        return f"failed: {sample.problem}"
    errors = sample.http_errors + sample.socket_errors
    return f"{sample.rps:,.0f} req/s, p50 {sample.p50_ms:.2f} ms, p99 {sample.p99_ms:.2f} ms" + (
        f", {errors} errors" if errors else ""
    )


def _progress(number: int, what: str, result: str) -> None:
    label = f"round {number}" if number else "overload"
    print(f"  {label:>8} | {what:<28} | {result}", flush=True)


def run_overload(endpoints: list[Endpoint], settings: Settings, results: report.Results) -> None:
    for conns in settings.overload_connections:
        for endpoint in (e for e in endpoints if e[0].name == "gateway"):
            sample = _load(endpoint, conns, settings.overload_duration, settings)
            results.overload[(endpoint[0].name, endpoint[1], conns)] = sample
            _progress(0, f"gateway {endpoint[1]} c{conns}", _brief(sample))


def measure(settings: Settings, token: str) -> tuple[report.Results, list[str]]:
    results = report.Results()
    with tempfile.TemporaryDirectory(prefix="vx11-bench-") as tmp:
        try:
            with contextlib.ExitStack() as stack:
                notes = _measure_in(stack, Path(tmp), settings, token, results)
        finally:  # the servers have stopped: their logs are complete
            _keep_logs(Path(tmp))
    notes.append(f"server logs: {LOGS.relative_to(services.ROOT)}/")
    return results, notes


def _measure_in(
    stack: contextlib.ExitStack, workdir: Path, settings: Settings, token: str,
    results: report.Results,
) -> list[str]:  # fmt: skip
    targets, notes = start_targets(stack, workdir, settings, token)
    for endpoint in probe(targets)[0]:  # warm-up: pools, caches, code paths
        _load(endpoint, 32, settings.warmup, settings)
    endpoints, probe_notes = probe(targets)
    notes += probe_notes
    ports = [t.service.metrics_port for t in targets if t.service.metrics_port]
    with scraper.scraping(ports) as scrapes:
        for number in range(1, settings.rounds + 1):
            run_round(number, endpoints, targets, settings, results, notes)
    notes.append(scrapes.summary())
    run_overload(endpoints, settings, results)
    if "abuse" not in settings.skip:
        gateway = next(t for t in targets if t.name == "gateway")
        print("  abuse    | slowloris, idle connections, slow bodies, a 192 MiB header ...")
        results.abuse = abuse.measure(gateway.service.port, token, gateway.workers())
    return notes


def _keep_logs(workdir: Path) -> None:
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, LOGS / log.name)


def render(settings: Settings, results: report.Results, header: list[str], notes: list[str]) -> str:
    high = max(settings.connections)
    parts = [
        "# vx11-gateway benchmark",
        "",
        *header,
        "",
        f"## Requests (median of {settings.rounds} interleaved rounds, "
        f"{settings.duration:g} s per run, {settings.loader.name})",
        "",
        *report.requests_table(results, settings.connections),
        "",
        f"Errors: HTTP = answers >= 400; socket = connect/read/write errors and answers slower "
        f"than {load.TIMEOUT_S} s.",
        "",
        "## Streaming (median MiB/s; RSS growth of the worker that grew most, worst round)",
        "",
        *report.transfer_table(results, settings.download_bytes, settings.upload_bytes),
        "",
        *_balance_section(results),
        f"## Overload ({' and '.join(map(str, settings.overload_connections))} connections, "
        f"{settings.overload_duration:g} s each; open-file limit "
        f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]})",
        "",
        *report.overload_table(results),
        "",
        *_feature_section(results, high),
        *_abuse_section(results),
        "## Issue 18 targets: every feature on (informational: the run never fails on a number)",
        "",
        *report.goals_table(results, high),
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in notes),
    ]
    return "\n".join(parts) + "\n"


def _balance_section(results: report.Results) -> list[str]:
    lines = report.balance_table(results)
    if not lines:
        return []
    return [
        "## Connection balance across workers (sampled in the middle of each run)",
        "",
        *lines,
        "",
    ]


def raise_fd_limit() -> None:
    """The soft limit on open files raised to the hard one (the servers and wrk inherit it):
    1,024 connections need more than the usual soft 1,024 in the gateway's workers and wrk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _feature_section(results: report.Results, high: int) -> list[str]:
    lines = report.features_table(results, [v.target for v in features.VARIANTS], high)
    if not lines:
        return []
    return [
        f"## What each feature costs ({high} connections, median of the rounds)",
        "",
        "The gateway as deployed against the same build without one feature, interleaved in "
        "the same rounds: with ÷ without, so 0.95x means the feature costs 5% of throughput.",
        "",
        *lines,
        "",
    ]


def _abuse_section(results: report.Results) -> list[str]:
    if results.abuse is None:
        return []
    header = "## Abuse (the gateway's default limits: head 10 s, body 30 s, 32 KiB of head)"
    return [header, "", *abuse.table(results.abuse), ""]


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    raise_fd_limit()
    started = time.monotonic()
    header = ["## Versions and settings", "", *environment.versions(), *settings_lines(settings)]
    print("\n".join(header), flush=True)
    token = secrets.token_urlsafe(24)
    try:
        results, notes = measure(settings, token)
    except services.StartError as exc:
        print(f"bench: a server did not start, nothing measured:\n{exc}", file=sys.stderr)
        return 1
    notes.append(f"whole run: {time.monotonic() - started:.0f} s")
    text = render(settings, results, header, notes)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print("\n" + text + f"\n(written to {RESULTS.relative_to(services.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
