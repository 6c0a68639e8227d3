"""One JSON object per log line, each carrying the correlation id of the request it belongs to."""

from __future__ import annotations

import json
import logging
import logging.config
import time

from .context import current_correlation_id

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


_PLAIN = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    """Extra fields come from ``extra={"fields": {...}}`` (the gateway's own lines: no scan of
    the record) or, for other libraries' records, from any non-standard attribute."""

    _second = -1
    _second_text = ""

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self._time(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": current_correlation_id.get(),
            "pid": record.process,  # which worker: set by logging for every record anyway
        }
        fields = getattr(record, "fields", None)
        if fields is not None:
            entry.update(fields)
        else:
            # Other libraries' extras, plain values only: Django's django.request records carry
            # the request object, whose text holds the full path with its query string.
            entry.update(
                (k, v)
                for k, v in vars(record).items()
                if k not in _STANDARD and isinstance(v, _PLAIN)
            )
        if record.exc_info and record.exc_info[1] is not None:
            # The type and message are enough to act on; a traceback on stdout is not wanted.
            entry["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


def configure(config: dict[str, object]) -> None:
    """Django's ``LOGGING_CONFIG``: the settings' ``LOGGING``, and Python's warnings routed
    through it (as JSON lines like everything else, not as raw text on stderr)."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
