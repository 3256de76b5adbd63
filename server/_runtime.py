"""What the server holds for its whole life: the engine (tokenizer and scorer loaded
once, at construction), the handoff store, and the bounded worker pool that every
heavy call goes through.

Work is bounded: at most ``max_concurrent`` calls run in worker threads and at most
``max_queue`` more wait; a call beyond that is refused at once with a "busy, retry
shortly" tool error instead of piling up memory.

    CONTEXT_DISTILL_MAX_CONCURRENT   calls running at once (default: 2)
    CONTEXT_DISTILL_MAX_QUEUE        calls allowed to wait (default: 16)
    CONTEXT_DISTILL_SCORER           ``model`` (default: the deletion model) or a baseline
                                     name (bm25, head+tail, tail, error-regex, random);
                                     a debugging / fallback option
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

import compaction
from compaction.cli import engine_from_env

__all__ = ["BusyError", "Runtime", "RuntimeConfig"]

log = logging.getLogger("context_distill.server")

T = TypeVar("T")


class BusyError(Exception):
    """Every worker is busy and the wait queue is full."""


def _positive_int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 0 or (value == 0 and name != "CONTEXT_DISTILL_MAX_QUEUE") or value > 10_000:
        raise ValueError(f"{name}={raw!r} is out of range (1 to 10000; the queue may be 0)")
    return value


@dataclass(frozen=True)
class RuntimeConfig:
    max_concurrent: int = 2
    max_queue: int = 16

    @classmethod
    def from_env(cls) -> RuntimeConfig:
        return cls(
            max_concurrent=_positive_int_env("CONTEXT_DISTILL_MAX_CONCURRENT", 2),
            max_queue=_positive_int_env("CONTEXT_DISTILL_MAX_QUEUE", 16),
        )


class Runtime:
    """The engine plus a bounded pool. Built once per server process."""

    def __init__(self, engine: compaction.Engine | None = None, config: RuntimeConfig | None = None) -> None:
        started = time.perf_counter()
        self.config = config or RuntimeConfig.from_env()
        self.engine = engine or engine_from_env()
        # Load the heavy things now, not on the first call. A missing or corrupt model
        # is remembered and reported by `status` and by each compact call.
        self.scorer_error: str | None = None
        try:
            _ = self.engine.tokenizer.count("warm up")
            _ = self.engine.scorer
        except compaction.AssetError as exc:
            self.scorer_error = f"{exc}; until then CONTEXT_DISTILL_SCORER=bm25 compacts with a baseline ranker"
            log.error("%s", self.scorer_error)
        except compaction.ContextDistillError as exc:
            self.scorer_error = str(exc)
            log.error("%s", exc)
        except ImportError:
            self.scorer_error = (
                "the deletion model is not part of this build; reinstall context-distill, "
                "or set CONTEXT_DISTILL_SCORER=bm25 to compact with a baseline ranker"
            )
            log.error("%s", self.scorer_error)
        self._limiter = anyio.CapacityLimiter(self.config.max_concurrent)
        self._waiting = 0
        self._count_lock = threading.Lock()
        self._handoff_store: Any = None
        self.load_seconds = time.perf_counter() - started
        log.info(
            "context-distill engine ready in %.2fs (scorer: %s)",
            self.load_seconds,
            self.scorer_name,
        )

    @property
    def scorer_name(self) -> str:
        if self.scorer_error:
            return "unavailable"
        return getattr(self.engine.scorer, "name", type(self.engine.scorer).__name__)

    # -- bounded work ------------------------------------------------------------------
    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a worker thread, bounded; raise BusyError when the queue is full."""
        limit = self.config.max_concurrent + self.config.max_queue
        with self._count_lock:
            if self._waiting >= limit:
                raise BusyError(
                    f"the server is busy ({self.config.max_concurrent} calls running, "
                    f"{self.config.max_queue} waiting); retry shortly"
                )
            self._waiting += 1
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        except anyio.get_cancelled_exc_class():
            log.info("a call was cancelled by the client; its work stopped at the next progress point")
            raise
        finally:
            with self._count_lock:
                self._waiting -= 1

    @property
    def in_flight(self) -> int:
        return self._waiting

    # -- handoff store -----------------------------------------------------------------
    def handoff_store(self) -> Any:
        """The HandoffStore under the data dir (built on first use)."""
        if self._handoff_store is None:
            store_cls = getattr(compaction, "HandoffStore", None)
            if store_cls is None:
                from compaction._handoff_store import HandoffStore as store_cls
            self._handoff_store = store_cls(self.engine.settings.data_dir)
        return self._handoff_store


def progress_bridge(report: Callable[[float, str], Any] | None) -> Callable[[float, str], None]:
    """The engine's ``on_progress`` for a call running in a worker thread of ``Runtime.run``.

    At each progress point it first stops the work when the client has cancelled the call
    (``notifications/cancelled``): the SDK cancels the call's scope, and ``check_cancelled``
    raises the cancellation in this thread, so a cancelled compaction of a large input frees
    its worker at the next step instead of running to the end. Then, when the client asked
    for progress (``report`` is not None), it sends at most one notification per 10 % step
    (plus the last one) so a long input does not flood the client.
    """
    last = [-1.0]

    def on_progress(fraction: float, message: str) -> None:
        _stop_if_cancelled()
        if report is None or (fraction < 1.0 and fraction - last[0] < 0.1):
            return
        last[0] = fraction
        try:
            anyio.from_thread.run(report, fraction, message)
        except Exception:  # a client gone mid-call must not break the work
            log.debug("progress notification not delivered", exc_info=True)

    return on_progress


def _stop_if_cancelled() -> None:
    """Raise the cancellation when the call this worker thread runs for was cancelled."""
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # not in a worker thread of Runtime.run (a direct call, a test)
        return
