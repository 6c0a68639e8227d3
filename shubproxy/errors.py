"""Errors that carry their HTTP meaning, and the one place that renders them.

    GatewayError
    ├── BadRequest              400 bad_request
    ├── Forbidden               403 forbidden
    ├── MethodNotAllowed        405 method_not_allowed (with Allow)
    ├── RequestTimeout          408 request_timeout    (a head or body too slow to arrive)
    ├── TooManyRequests         429 too_many_requests  (a rate limit; with policy, retry_after)
    ├── RateLimitUnavailable    503 rate_limit_unavailable (Redis down, fail-closed mode)
    ├── CacheUnavailable        503 cache_unavailable  (Redis down, where failing open is wrong)
    ├── TooManyConnections      503 too_many_connections (this worker's connection cap)
    ├── ServiceOverloaded       503 service_overloaded (backpressure: in-flight cap, pool wait)
    ├── PayloadTooLarge         413 payload_too_large
    ├── UriTooLong              414 uri_too_long
    ├── HeadersTooLarge         431 headers_too_large
    ├── NotImplementedByGateway 501 not_implemented    (a Transfer-Encoding other than chunked)
    └── UpstreamError           (has a Proxy-Status, RFC 9209)
        ├── ShubUnavailable     503 shub_unavailable   (connection refused, DNS)
        ├── ShubTimeout         504 shub_timeout       (connect, read or write timed out)
        ├── CircuitOpen         503 circuit_open       (the breaker: shub not even tried)
        ├── UpstreamRejected    502 upstream_rejected  (shub's 401: the gateway's credentials)
        └── UpstreamProtocolError 502 gateway_error    (malformed or truncated response)
            └── UpstreamBodyError                      (broke off mid-body: connection cut)

Nothing from httpx reaches a view: ``shubproxy.upstream`` translates at its boundary.
"""

from __future__ import annotations

import json

from django.http import HttpResponse

JSON = "application/json"


class GatewayError(Exception):
    status = 500
    code = "gateway_error"
    detail = "The gateway could not handle the request."

    def __init__(self, detail: str | None = None) -> None:
        if detail is not None:
            self.detail = detail
        super().__init__(self.detail)

    def headers(self) -> dict[str, str]:
        return {}

    def body_fields(self) -> dict[str, object]:
        """More of the JSON body than error, detail and correlation id."""
        return {}


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"
    detail = "The request is malformed."


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"
    detail = "A valid X-VX11-GW-TOKEN header is required."


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, allowed: str) -> None:
        self.allowed = allowed
        super().__init__(f"This path accepts {allowed} only.")

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allowed}


class RequestTimeout(GatewayError):
    status = 408
    code = "request_timeout"
    detail = "The request did not arrive in time."


class TooManyRequests(GatewayError):
    status = 429
    code = "too_many_requests"

    def __init__(self, policy: str, retry_after: int) -> None:
        self.policy = policy
        self.retry_after = retry_after
        super().__init__(f"The {policy} rate limit is used up; retry in {retry_after} s.")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def body_fields(self) -> dict[str, object]:
        return {"policy": self.policy, "retry_after": self.retry_after}


class RateLimitUnavailable(GatewayError):
    status = 503
    code = "rate_limit_unavailable"
    detail = "The gateway cannot check its rate limits (Redis is unreachable) and refuses to guess."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class TooManyConnections(GatewayError):
    status = 503
    code = "too_many_connections"
    detail = "This gateway worker has as many connections as it takes; try again."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class ServiceOverloaded(GatewayError):
    status = 503
    code = "service_overloaded"
    detail = "The gateway is serving as many requests to shub as it takes; try again."

    def __init__(self, detail: str | None = None, *, reason: str = "inflight") -> None:
        self.reason = reason  # vx11_gateway_shed_requests_total{reason}: inflight or pool
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": "1",
            "Proxy-Status": 'vx11-gateway; error=connection_limit_reached; details="overloaded"',
        }


class HeadersTooLarge(GatewayError):
    status = 431
    code = "headers_too_large"
    detail = "The request's headers are larger than the gateway accepts."


class NotImplementedByGateway(GatewayError):
    status = 501
    code = "not_implemented"
    detail = "The gateway does not implement what the request asks for."


class CacheUnavailable(GatewayError):
    status = 503
    code = "cache_unavailable"
    detail = "The gateway's cache (Redis) could not be reached."


class UriTooLong(GatewayError):
    status = 414
    code = "uri_too_long"
    detail = "The request target is longer than the gateway forwards."


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class UpstreamError(GatewayError):
    status = 502
    code = "gateway_error"
    detail = "The shub service could not be used."
    # RFC 9209 proxy error type; the translation boundary may name a more precise one.
    proxy_error = "proxy_internal_error"
    kind = "protocol"  # vx11_gateway_upstream_errors_total{kind}
    # Set when nothing reached shub's application (no connection, or one closed before any
    # answer): an idempotent request may be retried ("connect", the retries' reason label).
    retry_reason: str | None = None

    def __init__(self, detail: str | None = None, *, proxy_error: str | None = None) -> None:
        if proxy_error is not None:
            self.proxy_error = proxy_error
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"Proxy-Status": f'vx11-gateway; error={self.proxy_error}; details="{self.code}"'}


class ShubUnavailable(UpstreamError):
    status = 503
    code = "shub_unavailable"
    detail = "The shub service could not be reached."
    proxy_error = "connection_refused"
    kind = "unavailable"


class ShubTimeout(UpstreamError):
    status = 504
    code = "shub_timeout"
    detail = "The shub service did not answer in time."
    proxy_error = "connection_timeout"
    kind = "timeout"


class CircuitOpen(UpstreamError):
    """The breaker is open: the request is refused without a connection to shub."""

    status = 503
    code = "circuit_open"
    detail = "The shub service is failing; the gateway does not send it requests for now."
    proxy_error = "destination_unavailable"
    kind = "circuit_open"

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__()

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after)}

    def body_fields(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}


class UpstreamRejected(UpstreamError):
    """shub refused the gateway's own credentials (401): its EntryGuard signature or its
    X-VX11-Token. Nothing the client can fix, so not passed on as if it were the client's."""

    status = 502
    code = "upstream_rejected"
    detail = (
        "The shub service refused the gateway's credentials (EntryGuard signature or token); "
        "the gateway's configuration must be fixed."
    )
    proxy_error = "proxy_configuration_error"
    kind = "rejected"

    def headers(self) -> dict[str, str]:
        return {"Proxy-Status": f"{super().headers()['Proxy-Status']}; received-status=401"}


class UpstreamProtocolError(UpstreamError):
    status = 502
    code = "gateway_error"
    detail = "The shub service sent a malformed response."
    proxy_error = "http_protocol_error"


class UpstreamBodyError(UpstreamProtocolError):
    """The upstream failed after the response had started: the client connection is cut."""

    detail = "The shub service broke off the response body."
    kind = "body_broken"


def error_body(error: GatewayError, correlation_id: str) -> bytes:
    return json.dumps(
        {
            "error": error.code,
            "detail": error.detail,
            "correlation_id": correlation_id,
            **error.body_fields(),
        }
    ).encode()


def error_response(error: GatewayError, correlation_id: str) -> HttpResponse:
    body = error_body(error, correlation_id)
    response = HttpResponse(body, status=error.status, content_type=JSON)
    response["Content-Length"] = str(len(body))
    for name, value in error.headers().items():
        response[name] = value
    return response
