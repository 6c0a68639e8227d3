"""`make bench`: the gateway measured against the upstream, nginx and a FastAPI reference.

The driver is ``bench/run.py``; load comes from ``wrk`` or ``bench/loadgen.py``, big transfers
from ``bench/transfer.py``, each in its own process.
"""
