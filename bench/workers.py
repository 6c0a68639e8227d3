"""gunicorn workers for the benchmark's feature variants: the gateway's own worker with one
feature taken out, so ``make bench`` can say what that feature costs (never used in production).
"""

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shubproxy.compat.uvicorn import DrainingUvicornWorker


class UnguardedWorker(DrainingUvicornWorker):
    """Serves with uvicorn's own protocols: no limits on the connection."""

    protocols = {"httptools": HttpToolsProtocol, "h11": H11Protocol}
