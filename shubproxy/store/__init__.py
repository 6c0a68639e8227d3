"""The gateway's shared state in Redis: one connection layer (``connection``), the pub/sub bus
(``bus``) and the one place Redis's exceptions are translated (``errors``). The health cache uses
it now; rate limits and the circuit breaker are next."""
