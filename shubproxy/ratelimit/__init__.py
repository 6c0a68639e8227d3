"""Rate limiting: the policies (``policy``), the shared token buckets in Redis and their local
stand-in (``bucket``), the worker's leases on them (``limiter``), and the IETF RateLimit
fields (``fields``)."""
