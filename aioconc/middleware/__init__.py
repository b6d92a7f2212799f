"""The policy stages of the call chain, and which of them a worker gets.

Order, outermost first (see ``aioconc/_chain.py`` for the picture)::

    queue    max_queued_tasks: in-flight cap per worker, held-back calls by priority
    retry    tenacity: attempts, backoff on the loop, retry_until validators
    timeout  per-call deadline -> CallTimeoutError

Limits are not a stage: methods acquire them themselves through ``self.limits``
(as in concurry), which every worker has.

``_stages.stages_for`` returns only the stages a worker's options switch on: a
worker with none of them has an empty chain and its calls go straight to the
backend.  The stages are configured through a worker's options, so the package
has no public names of its own.
"""

# Importable as before (code written against earlier releases), but not public.
from ._stages import stages_for as stages_for

__all__: list[str] = []


def __dir__() -> list[str]:
    """What ``dir()`` shows: the package's public names (none) and its private ones."""
    return sorted(name for name in globals() if name.startswith("_"))
