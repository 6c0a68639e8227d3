"""gunicorn settings of the FastAPI reference: the gateway's server settings (gunicorn.conf.py)
without its configuration check, so both are served alike."""

import os

bind = os.environ.get("VX11_BIND", "127.0.0.1:8000")
worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
graceful_timeout = 30
timeout = 30
keepalive = 75
max_requests = 1_000_000  # as the gateway: restarts under load would cost it throughput
max_requests_jitter = 100_000
forwarded_allow_ips = ""
accesslog = None
errorlog = "-"
control_socket_disable = True
