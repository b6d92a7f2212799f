"""Limits: definitions (``RateLimit``, ``CallLimit``, ``ResourceLimit``) and enforcers.

``LimitSet`` enforces several limits atomically; ``LimitPool`` spreads
acquisitions over several sets; ``_worker_limits.limits_for`` turns a worker's
``limits`` option into its ``self.limits``.  The algorithms live in
``_algorithms.py`` as pure state objects and the waiting in ``_engine.py``.
"""

from ._acquisition import Acquisition as Acquisition
from ._definitions import CallLimit as CallLimit
from ._definitions import Limit as Limit
from ._definitions import RateLimit as RateLimit
from ._definitions import ResourceLimit as ResourceLimit
from ._limit_pool import LimitPool as LimitPool
from ._limit_set import LimitSet as LimitSet
from ._limit_set import LimitSetAcquisition as LimitSetAcquisition

# isort: split
# Importable as before (code written against earlier releases), but not public:
# the engine behind a set and what makes a worker's self.limits.
from ._engine import LimitBackend as LimitBackend
from ._engine import LocalLimitEngine as LocalLimitEngine
from ._worker_limits import limits_for as limits_for

__all__ = [
    "Acquisition",
    "CallLimit",
    "Limit",
    "LimitPool",
    "LimitSet",
    "LimitSetAcquisition",
    "RateLimit",
    "ResourceLimit",
]

_PUBLIC = frozenset(__all__)


def __dir__() -> list[str]:
    """What ``dir()`` shows: the public names and the private ones, not the compat ones."""
    return sorted(name for name in globals() if name in _PUBLIC or name.startswith("_"))
