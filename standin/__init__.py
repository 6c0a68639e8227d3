"""A stand-in for the shub upstream: ``python -m standin --port 8007``."""
