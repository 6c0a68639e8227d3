"""The client connection before the ASGI app sees a request: what a head may cost in bytes and
time, how many connections a worker takes, and how a refusal is written. The uvicorn protocols
that apply these live in ``shubproxy.compat.uvicorn`` (they touch uvicorn's internals)."""
