"""Verify the replay's signatures in parallel, in chunks, while the replay goes on reading.

Ed25519 verification costs ~100-250 us per event here, more than reading and parsing one, so
it runs off the event loop, by default in a process pool (one worker per CPU, each with its own
`Verifier`). Threads are offered too: `cryptography` releases the GIL inside `verify`, but each
worker must take the GIL back between two messages, from an event loop that is busy parsing,
and measured slower than processes here. Identical (subject, payload, signer, signature) are
verified once, and signatures verified by an earlier audit are taken from the `VerifiedCache`.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from bus.headers import SIGNATURE as SIGNATURE_HEADER
from bus.headers import SIGNER as SIGNER_HEADER
from bus.signing import SignatureStatus, Verifier
from ops.audit.cache import VerifiedCache
from ops.audit.facts import Key

"""(stream, sequence) of one stored message."""
Item = tuple[str, bytes, str, str]
"""(subject, payload, signer, signature) to verify."""
Result = tuple[SignatureStatus, str | None]

_WORKER_VERIFIER: Verifier | None = None


class Parallelism(StrEnum):
    THREADS = "threads"
    PROCESSES = "processes"
    NONE = "none"


def _init_process(certs_dir: str) -> None:
    global _WORKER_VERIFIER  # noqa: PLW0603 - one verifier per worker process
    _WORKER_VERIFIER = Verifier.from_dir(Path(certs_dir))


def check_chunk(items: Sequence[Item], verifier: Verifier | None = None) -> list[SignatureStatus]:
    """Return the signature status of each item (runs in a worker thread or process)."""
    checker = verifier or _WORKER_VERIFIER
    assert checker is not None, "worker process started without a verifier"
    return [
        checker.check(subject, payload, {SIGNER_HEADER: signer, SIGNATURE_HEADER: signature})[0]
        for subject, payload, signer, signature in items
    ]


def make_executor(kind: Parallelism, certs_dir: Path, workers: int | None) -> Executor | None:
    """Return the pool that verifies chunks (None: verify on the event loop's thread)."""
    count = workers or os.cpu_count() or 1
    if kind is Parallelism.THREADS:
        return ThreadPoolExecutor(count, thread_name_prefix="audit-verify")
    if kind is Parallelism.PROCESSES:
        return ProcessPoolExecutor(count, initializer=_init_process, initargs=(str(certs_dir),))
    return None


class SignatureChecker:
    """Collects messages to verify and hands them to the pool in chunks."""

    def __init__(
        self,
        verifier: Verifier,
        cache: VerifiedCache,
        executor: Executor | None,
        *,
        process_pool: bool = False,
        chunk: int = 256,
        max_in_flight: int = 16,
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.executor = executor
        self.process_pool = process_pool
        self.chunk = chunk
        self.max_in_flight = max_in_flight
        self.results: dict[Key, Result] = {}
        self.cached = 0
        self.verified = 0
        self._keys: list[Key] = []
        self._items: list[Item] = []
        self._digests: list[bytes] = []
        self._in_flight: deque[tuple[list[Key], list[Item], list[bytes], asyncio.Future[Any]]] = (
            deque()
        )
        self._by_digest: dict[bytes, list[Key]] = {}

    async def add(self, key: Key, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """Queue one message; messages without signature headers are not queued."""
        signer = headers.get(SIGNER_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not signer or not signature:
            return
        digest = self.cache.digest(subject, payload, signer, signature)
        if digest in self.cache:
            self.results[key] = (SignatureStatus.VALID, signer)
            self.cached += 1
            return
        twins = self._by_digest.get(digest)
        if twins is not None:  # the same bytes already queued: one verification serves both
            twins.append(key)
            return
        self._by_digest[digest] = [key]
        self._keys.append(key)
        self._items.append((subject, payload, signer, signature))
        self._digests.append(digest)
        if len(self._items) >= self.chunk:
            await self._dispatch()

    async def _dispatch(self) -> None:
        if not self._items:
            return
        keys, items, digests = self._keys, self._items, self._digests
        self._keys, self._items, self._digests = [], [], []
        loop = asyncio.get_running_loop()
        if self.executor is None:
            future: asyncio.Future[Any] = loop.create_future()
            future.set_result(check_chunk(items, self.verifier))
        elif self.process_pool:
            future = loop.run_in_executor(self.executor, check_chunk, items)
        else:
            future = loop.run_in_executor(self.executor, partial(check_chunk, items, self.verifier))
        self._in_flight.append((keys, items, digests, future))
        while len(self._in_flight) > self.max_in_flight:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        keys, items, digests, future = self._in_flight.popleft()
        statuses: list[SignatureStatus] = await future
        self.verified += len(items)
        for key, item, digest, status in zip(keys, items, digests, statuses, strict=True):
            if status is SignatureStatus.VALID:
                self.cache.add(digest)
            for twin in self._by_digest.pop(digest, [key]):
                self.results[twin] = (status, item[2])

    async def finish(self) -> dict[Key, Result]:
        """Verify what is left and return the status of every queued message."""
        await self._dispatch()
        while self._in_flight:
            await self._settle_oldest()
        return self.results
