"""The gateway's features on the request path, each with the settings that take it out, for
the benchmark's "what each feature costs" table: the gateway as deployed against the same build
without that one feature, interleaved in the same rounds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    feature: str  # what the variant goes without
    env: dict[str, str]

    @property
    def target(self) -> str:
        return "gateway without " + self.feature


_EACH = (
    Variant(
        "connection limits",
        {"GUNICORN_CMD_ARGS": "--worker-class bench.workers.UnguardedWorker"},
    ),
    Variant("rate limits", {"VX11_RATE_LIMIT_ENABLED": "false"}),
    # One socket shared by the workers instead of one each: the connection balance's "before".
    Variant("per-worker listeners", {"VX11_LISTEN_PER_WORKER": "off"}),
    Variant("metrics", {"VX11_METRICS_ENABLED": "false"}),
    # Against a stand-in that checks no signature (the gateway's is one that checks them all).
    Variant("signing", {"VX11_ENTRYGUARD_ENABLED": "false"}),
    Variant(
        "resilience",
        {"VX11_BREAKER_ENABLED": "false", "VX11_RETRY_ATTEMPTS": "0", "VX11_MAX_INFLIGHT": "0"},
    ),
)
# All of them at once: the same build as bare as it gets, for what they cost together.
EVERY = Variant("every feature", {k: v for variant in _EACH for k, v in variant.env.items()})
VARIANTS = (*_EACH, EVERY)
