"""Signature checks spread over processes (a verify pool).

An event's ECDSA P-256 verification is most of what a bridge spends on it that no code can
cut (tools/bench_ingest.py). With `verify_workers` = 0, the default, the ingest verifies in its
own process; with N > 0, each batch's signatures are checked by N worker processes, a share
each, while the ingest parses and stores. The workers see only what a check needs (the
device's public key, the COSE Sig_structure and the signature), judge nothing else, and answer
one yes or no a signature; the ingest still parses and checks every message itself, from the
same bytes the worker verified (companion/service/ingest.py).

The ingest's own Python (CBOR, the payload schema, the store, the acks) is then the limit, on
one core; on a machine with more cores, replicas (docs/replicas.md) spread that part.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from cryptography.hazmat.primitives.asymmetric import ec

from companion.wire.cose import check_signature, load_public_key

# One check: (the device's SEC1 public key, the COSE Sig_structure, the signature r || s).
Check = tuple[bytes, bytes, bytes]
_KEYS: dict[bytes, ec.EllipticCurvePublicKey] = {}  # each process's loaded keys
MAX_KEYS = 10_000  # bounded: a worker lives as long as the bridge


def verify_all(checks: list[Check]) -> list[bool]:
    """Whether each signature verifies with its key (wire.cose.check_signature; a bad key is a
    failed check)."""
    out = []
    for raw, tbs, sig in checks:
        try:
            key = _KEYS.get(raw)
            if key is None:
                if len(_KEYS) >= MAX_KEYS:
                    _KEYS.clear()
                key = _KEYS[raw] = load_public_key(raw)
            check_signature(key, tbs, sig)
            out.append(True)
        except ValueError:  # BadSignatureError is one, as is a key that is no P-256 point
            out.append(False)
    return out


class VerifyPool:
    """verify_all, on `workers` processes (0: in this process)."""

    def __init__(self, workers: int = 0):
        self.workers = workers
        self.restarts = 0  # pools replaced after a worker died
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            self._pool = self._new()
            self._pool.submit(verify_all, []).result()  # started now: a broken pool fails at start

    def _new(self) -> ProcessPoolExecutor:
        # spawn: workers start from a clean interpreter, never a fork of the bridge's threads,
        # locks and connections; they are the bridge's own children.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        """A worker died (killed, out of memory): the pool is replaced, once however many
        batches saw it broken."""
        if self._pool is broken:
            from companion.service.logs import log

            log.warning("a signature worker died; its pool is started again",
                        extra={"fields": {"workers": self.workers}})
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new()
            self.restarts += 1

    def verify(self, checks: list[Check]) -> list[bool]:
        return self.start(checks)()

    def start(self, checks: list[Check]) -> Callable[[], list[bool]]:
        """Start the checks on the workers; -> a call that waits for their answers. Without
        workers, the checks run when it is called. A pool whose worker died gives no verdict:
        its checks are made here instead and the pool is started again, so that a dead worker
        never turns into refused events."""
        pool = self._pool
        if pool is None or len(checks) < 2:
            return lambda: verify_all(checks)
        share = -(-len(checks) // self.workers)
        try:
            futures = [pool.submit(verify_all, checks[i:i + share]) for i in range(0, len(checks), share)]
        except BrokenProcessPool:
            self._restart(pool)
            return lambda: verify_all(checks)

        def answers() -> list[bool]:
            try:
                return [ok for f in futures for ok in f.result()]
            except BrokenProcessPool:
                self._restart(pool)
                return verify_all(checks)

        return answers

    def pids(self) -> list[int]:
        """The workers' process ids (for measuring them)."""
        procs = getattr(self._pool, "_processes", None) or {}
        return sorted(procs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
