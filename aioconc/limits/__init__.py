"""Limits: the definitions (``RateLimit``, ``CallLimit``, ``ResourceLimit``).

The enforcers (``LimitSet``, ``LimitPool``) and the algorithms join this package later.
"""

from ._definitions import CallLimit as CallLimit
from ._definitions import Limit as Limit
from ._definitions import RateLimit as RateLimit
from ._definitions import ResourceLimit as ResourceLimit

__all__ = ["CallLimit", "Limit", "RateLimit", "ResourceLimit"]
