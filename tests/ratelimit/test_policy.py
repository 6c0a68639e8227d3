"""Rates as operators write them, and the settings that name them; a bad one stops start-up."""

from __future__ import annotations

import hashlib

import pytest

from shubproxy.config import ConfigError, load_config
from shubproxy.ratelimit.policy import Policy, RateError, parse_rate

RATES = [
    ("1000/minute", 1000, 60),
    ("50/second", 50, 1),
    ("20000/hour", 20000, 3600),
    ("7/day", 7, 86400),
    (" 5 / minutes ", 5, 60),
]


@pytest.mark.parametrize(("text", "limit", "window"), RATES)
def test_rates_read_as_limit_and_window(text, limit, window):
    assert parse_rate("ip", text) == Policy("ip", limit, window)


def test_off_turns_a_policy_off():
    assert parse_rate("ip", "OFF") is None


@pytest.mark.parametrize("text", ["1000", "0/minute", "-1/minute", "10/week", "ten/minute", ""])
def test_anything_else_is_refused(text):
    with pytest.raises(RateError, match="is not a rate"):
        parse_rate("ip", text)


def test_the_defaults_are_the_contract():
    limits = load_config({}).rate_limit
    assert limits.enabled
    assert limits.token == Policy("token", 1000, 60)
    assert limits.ip == Policy("ip", 5000, 60)
    assert limits.auth_failures == Policy("auth_failures", 100, 60)
    assert limits.on_redis_error == "local"


@pytest.mark.parametrize(
    "name", ["VX11_RATE_LIMIT_TOKEN", "VX11_RATE_LIMIT_IP", "VX11_RATE_LIMIT_AUTH_FAILURES"]
)
def test_a_bad_rate_stops_start_up_naming_its_variable(name):
    with pytest.raises(ConfigError, match=name):
        load_config({name: "lots"})


def test_a_bad_mode_is_refused():
    with pytest.raises(ConfigError, match="VX11_RATE_LIMIT_ON_REDIS_ERROR"):
        load_config({"VX11_RATE_LIMIT_ON_REDIS_ERROR": "maybe"})


def sha(token: bytes) -> str:
    return hashlib.sha256(token).hexdigest()


def test_a_token_gets_its_own_limit_named_by_its_hash():
    env = {"VX11_GATEWAY_TOKEN": "partner-token-1,other"}
    env["VX11_RATE_LIMIT_TOKEN_OVERRIDES"] = sha(b"partner-token-1")[:12] + ":5/second"
    limits = load_config(env).rate_limit
    assert limits.token_policy(sha(b"partner-token-1")) == Policy("token", 5, 1)
    assert limits.token_policy(sha(b"other")) == Policy("token", 1000, 60)


OVERRIDES = [
    ("nothex:5/second", "hex characters"),
    ("abc:5/second", "hex characters"),
    ("0123456789ab:5/second", "no token of VX11_GATEWAY_TOKEN"),
    (sha(b"t")[:12] + ":fast", "is not a rate"),
    (sha(b"t")[:12] + ":5/s", "is not a rate"),
]


@pytest.mark.parametrize(("overrides", "message"), OVERRIDES)
def test_an_override_that_names_no_token_or_no_rate_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"VX11_GATEWAY_TOKEN": "t", "VX11_RATE_LIMIT_TOKEN_OVERRIDES": overrides})
