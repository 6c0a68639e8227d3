"""The benchmark's settings: command-line options, and how they are described in the report."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from . import features, load, services

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """One run's plan, fixed before anything starts."""

    rounds: int
    duration: float
    connections: tuple[int, ...]
    overload_connections: tuple[int, ...]
    overload_duration: float
    warmup: float
    download_bytes: int
    upload_bytes: int
    workers: int
    loader: load.Loader
    skip: frozenset[str]
    features: frozenset[str]  # the variants to run (bench/features.py), by feature


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description="Benchmark the gateway (make bench).")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load run")
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="workers of each server")
    parser.add_argument("--download-mib", type=int, default=1024)
    parser.add_argument("--upload-mib", type=int, default=200)
    parser.add_argument(
        "--skip", default="", help="comma-separated: nginx, reference, features, abuse"
    )
    parser.add_argument(
        "--features",
        default=",".join(v.feature for v in features.VARIANTS),
        help="comma-separated: the features to measure on and off (default: all of "
        "bench/features.py)",
    )
    args = parser.parse_args(argv)
    chosen = frozenset(name.strip() for name in args.features.split(",") if name.strip())
    if unknown := chosen - {v.feature for v in features.VARIANTS}:
        parser.error(f"--features: no such feature: {', '.join(sorted(unknown))}")
    return Settings(
        rounds=max(1, args.rounds),
        duration=args.duration,
        connections=(1, 32),
        overload_connections=(256, 1024),
        overload_duration=max(args.duration + 2, 6.0),
        warmup=1.0,
        download_bytes=args.download_mib * MIB,
        upload_bytes=args.upload_mib * MIB,
        workers=args.workers,
        loader=load.Loader.detect(args.loader, args.wrk_threads),
        skip=frozenset(name.strip() for name in args.skip.split(",") if name.strip()),
        features=chosen,
    )


def settings_lines(settings: Settings) -> list[str]:
    mib = services.MAX_BODY_BYTES // MIB
    return [
        f"- gateway: `python -m gunicorn -c gunicorn.conf.py vx11site.asgi:application`, "
        f"WEB_CONCURRENCY={settings.workers} (uvicorn workers), DJANGO_DEBUG=false, access log "
        f"on (VX11_LOG_LEVEL=INFO, to a file), VX11_MAX_BODY_BYTES={mib} MiB, rate limits on "
        f"(token, ip and auth_failures at 100,000,000/minute: never denying), VX11_REDIS_URL "
        "= a private redis-server, db 0",
        f"- nginx: {settings.workers} workers, keep-alive to the upstream, default buffering, "
        "access log on, token check, proxy_cache 60 s on /shub/health (bench/nginx.conf.template)",
        f"- FastAPI reference: httpx + redis.asyncio (health TTL 60 s, db 1), the gateway's "
        f"gunicorn settings, {settings.workers} workers (bench/fastapi_ref/)",
        "- upstream: the stand-in (`python -m standin`), one uvicorn process; the gateway's checks"
        " its EntryGuard signatures (VX11_TENTACULO_LINK_SHARED_SECRET), a second one, for the"
        " rest, checks none",
        f"- load: {settings.loader.name}, {settings.duration:g} s per run, connections "
        f"{'/'.join(map(str, settings.connections))}, {settings.rounds} rounds interleaved "
        f"(every target in turn per scenario), {settings.warmup:g} s warm-up per endpoint; "
        f"transfers: {settings.download_bytes // MIB} MiB download, "
        f"{settings.upload_bytes // MIB} MiB upload, one at a time, from their own process",
    ]
