"""Limits: definitions (``RateLimit``, ``CallLimit``, ``ResourceLimit``) and enforcers.

``LimitSet`` enforces several limits atomically; ``LimitPool`` spreads
acquisitions over several sets; ``limits_for`` turns a worker's ``limits``
option into its ``self.limits``.  The algorithms live in ``_algorithms.py`` as
pure state objects and the waiting in ``_engine.py``.
"""

from ._acquisition import Acquisition as Acquisition
from ._definitions import CallLimit as CallLimit
from ._definitions import Limit as Limit
from ._definitions import RateLimit as RateLimit
from ._definitions import ResourceLimit as ResourceLimit
from ._engine import LimitBackend as LimitBackend
from ._engine import LocalLimitEngine as LocalLimitEngine
from ._limit_pool import LimitPool as LimitPool
from ._limit_set import LimitSet as LimitSet
from ._limit_set import LimitSetAcquisition as LimitSetAcquisition
from ._worker_limits import limits_for as limits_for

__all__ = [
    "Acquisition",
    "CallLimit",
    "Limit",
    "LimitBackend",
    "LimitPool",
    "LimitSet",
    "LimitSetAcquisition",
    "LocalLimitEngine",
    "RateLimit",
    "ResourceLimit",
    "limits_for",
]
