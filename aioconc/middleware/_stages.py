"""Which stages of the chain a worker's options switch on, outermost first.

The order is the one ``aioconc/middleware/__init__.py`` draws: queue, retry,
timeout.  A worker with none of them has an empty chain and its calls go
straight to the backend.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from ._queue import SubmissionQueue, queue_applies
from ._retry import retry_stage
from ._timeout import OnTimeout, timeout_stage

if TYPE_CHECKING:
    from .._chain import Stage
    from .._options import Options

__all__ = ["stages_for"]


def stages_for(
    options: Options,
    methods: Collection[str],
    *,
    worker_class: str | None = None,
    on_timeout: OnTimeout | None = None,
    native_queue: bool = False,
) -> list[Stage]:
    """The stages, outermost first, that ``options`` switch on for a worker.

    ``methods`` are the worker's public method names (for per-method options),
    ``worker_class`` the class name retry predicates see in their context, and
    ``on_timeout`` the backend worker's hook for a timed-out call, if it has one;
    ``native_queue`` says the backend enforces ``max_queued_tasks`` itself.

    Raises ``ValueError`` for retry options that ``RetryConfig`` rejects.
    """
    stages: list[Stage] = []
    if (
        queue_applies(options) and not native_queue
    ):  # max_queued_tasks: in-flight cap, held back by priority
        stages.append(SubmissionQueue(options.max_queued_tasks or 0))
    retry = retry_stage(options, methods, worker_class=worker_class)
    if retry is not None:
        stages.append(retry)
    # The timeout stage comes with the worker's timeout option, and with any
    # other stage, so that a per-call options(timeout=...) is honoured (it
    # passes calls without a timeout straight through).  A worker with no
    # chain at all gets a timeout-only chain from its handle on first use.
    if options.timeout is not None or stages:
        stages.append(timeout_stage(options.timeout, on_timeout=on_timeout))
    return stages
