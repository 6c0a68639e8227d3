"""A bounded load of real HTTP requests from a few threads, each answer kept with its time, for
tests that change the upstream under load."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Answer:
    started: float  # time.time()
    seconds: float
    status: int  # 0: no HTTP answer at all
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: bytes = b""
    number: int = -1  # the request's number, as ``request`` was given it

    def json(self) -> dict[str, Any]:
        import json

        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def error(self) -> str | None:
        return self.json().get("error")


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.started >= moment]

    def last(self, count: int) -> list[Answer]:
        return list(self.answers)[-count:]

    def wait_for(self, condition: Callable[[Load], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition(self):
            assert time.monotonic() < deadline, "the load never got there"
            time.sleep(0.02)


@contextlib.contextmanager
def running(
    urls: list[str],
    request: Callable[[httpx.Client, int], httpx.Response],
    *,
    threads: int = 6,
    pause: float = 0.01,
    seconds: float = 60,
) -> Iterator[Load]:
    """``threads`` clients sending ``request`` (given a client and the request's number) to
    ``urls`` in turn, ``pause`` apart, until the block ends or ``seconds`` pass."""
    load = Load()
    numbers = itertools.count()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        with httpx.Client(base_url=urls[index % len(urls)], timeout=30) as c:
            while not load.stopping.is_set() and time.monotonic() < deadline:
                started, clock, number = time.time(), time.perf_counter(), next(numbers)
                try:
                    response = request(c, number)
                    answer = Answer(
                        started,
                        time.perf_counter() - clock,
                        response.status_code,
                        response.headers,
                        response.content,
                        number,
                    )
                except httpx.HTTPError:
                    answer = Answer(started, time.perf_counter() - clock, 0, number=number)
                load.answers.append(answer)
                time.sleep(pause)

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield load
    finally:
        load.stopping.set()
        for worker in workers:
            worker.join()
