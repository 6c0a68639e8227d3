"""A gateway of one process for the tests: plain uvicorn, but serving with the gateway's own
protocol (its connection limits) and settings, as the gunicorn worker does.

    python -m tests.serve --port 8123
"""

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port

    from django.conf import settings

    import vx11site.asgi  # noqa: F401  (Django is set up, settings.VX11 read)
    from shubproxy.compat.uvicorn import PROTOCOLS

    uvicorn.run(
        "vx11site.asgi:application",
        host="127.0.0.1",
        port=port,
        http=PROTOCOLS[settings.VX11.client.http_parser],
        proxy_headers=False,
        server_header=False,
        ws="none",
        access_log=False,
        log_config=None,  # Django's LOGGING (JSON lines) applies to uvicorn's loggers too
        log_level="warning",
    )


if __name__ == "__main__":
    main()
