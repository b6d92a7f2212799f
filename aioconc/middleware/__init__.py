"""The policy stages of the call chain, and which of them a worker gets.

Order, outermost first (see ``aioconc/_chain.py`` for the picture)::

    queue    max_queued_tasks: in-flight cap per worker, held-back calls by priority
    limits   CallLimit / ResourceLimit acquired around each attempt
    retry    tenacity: attempts, backoff on the loop, retry_until validators
    timeout  per-call deadline -> CallTimeoutError

``stages_for`` returns only the stages a worker's options switch on: a worker
with none of them has an empty chain and its calls go straight to the backend.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._chain import Stage
    from .._options import Options

__all__ = ["stages_for"]


def stages_for(options: Options, methods: Collection[str]) -> list[Stage]:
    """The stages, outermost first, that ``options`` switch on for a worker.

    ``methods`` are the worker's public method names (for per-method options).
    """
    stages: list[Stage] = []
    # queue stage: added with the submission queue (max_queued_tasks)
    # limits stage: added with the limits engine
    # retry stage: added with retries
    # timeout stage: added with per-call timeouts
    return stages
