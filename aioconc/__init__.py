"""aioconc: asyncio-native workers and tasks behind one API, in five modes.

``from concurry import X`` becomes ``from aioconc import X``: the first group
below is concurry 0.13.2's public API (CONFORMANCE item 1); the second is
aioconc's own (``Future``, the handle and statistics types that calls return,
the exception types, task records, direct calls).
"""

# ---------------------------------------------------------------------------
# concurry 0.13.2's names
# ---------------------------------------------------------------------------

from ._enums import ExecutionMode as ExecutionMode
from ._enums import LoadBalancingAlgorithm as LoadBalancingAlgorithm
from ._enums import PollingAlgorithm as PollingAlgorithm
from ._enums import RateLimitAlgorithm as RateLimitAlgorithm
from ._enums import RateWindow as RateWindow
from ._enums import RetryAlgorithm as RetryAlgorithm
from ._enums import ReturnWhen as ReturnWhen
from ._exceptions import RetryValidationError as RetryValidationError
from ._future import BaseFuture as BaseFuture
from ._retry_config import RetryConfig as RetryConfig
from ._timer import Timer as Timer
from ._timer import TimerError as TimerError
from ._wait import ALL_COMPLETED as ALL_COMPLETED
from ._wait import FIRST_COMPLETED as FIRST_COMPLETED
from ._wait import FIRST_EXCEPTION as FIRST_EXCEPTION
from ._wait import async_gather as async_gather
from ._wait import async_wait as async_wait
from ._wait import gather as gather
from ._wait import wait as wait
from ._worker import Worker as Worker
from ._worker import worker as worker
from ._wrap import wrap_future as wrap_future
from .config import global_config as global_config
from .config import temp_config as temp_config
from .limits import Acquisition as Acquisition
from .limits import CallLimit as CallLimit
from .limits import Limit as Limit
from .limits import LimitPool as LimitPool
from .limits import LimitSet as LimitSet
from .limits import LimitSetAcquisition as LimitSetAcquisition
from .limits import RateLimit as RateLimit
from .limits import ResourceLimit as ResourceLimit
from .progress import ProgressBar as ProgressBar
from .task import Executor as Executor
from .task import TaskWorker as TaskWorker
from .task import task as task

# ---------------------------------------------------------------------------
# aioconc's own
# ---------------------------------------------------------------------------

# isort: split
from ._carry import carry_context as carry_context
from ._exceptions import AioconcError as AioconcError
from ._exceptions import CallTimeoutError as CallTimeoutError
from ._exceptions import RemoteError as RemoteError
from ._exceptions import SerializationError as SerializationError
from ._exceptions import WorkerCrashedError as WorkerCrashedError
from ._exceptions import WorkerError as WorkerError
from ._exceptions import WorkerStartError as WorkerStartError
from ._exceptions import WorkerStoppedError as WorkerStoppedError
from ._future import CancelledError as CancelledError
from ._future import Future as Future
from ._future import TaskRecord as TaskRecord
from ._future import TaskStatus as TaskStatus
from ._pool import PoolHandle as PoolHandle
from ._pool import PoolStatistics as PoolStatistics
from ._proxy import WorkerHandle as WorkerHandle
from ._stats import CallStatistics as CallStatistics
from ._sync_future import SyncFuture as SyncFuture
from .direct import DirectFunction as DirectFunction
from .direct import direct as direct
from .middleware._queue import QueueStatistics as QueueStatistics
from .task import TaskFunction as TaskFunction

__version__ = "0.1.0"

# Two lists, as the imports above: concurry's names, then aioconc's own.
__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "Acquisition",
    "BaseFuture",
    "CallLimit",
    "ExecutionMode",
    "Executor",
    "Limit",
    "LimitPool",
    "LimitSet",
    "LimitSetAcquisition",
    "LoadBalancingAlgorithm",
    "PollingAlgorithm",
    "ProgressBar",
    "RateLimit",
    "RateLimitAlgorithm",
    "RateWindow",
    "ResourceLimit",
    "RetryAlgorithm",
    "RetryConfig",
    "RetryValidationError",
    "ReturnWhen",
    "TaskWorker",
    "Timer",
    "TimerError",
    "Worker",
    "async_gather",
    "async_wait",
    "gather",
    "global_config",
    "task",
    "temp_config",
    "wait",
    "worker",
    "wrap_future",
]
__all__ += [
    "AioconcError",
    "CallStatistics",
    "CallTimeoutError",
    "CancelledError",
    "DirectFunction",
    "Future",
    "PoolHandle",
    "PoolStatistics",
    "QueueStatistics",
    "RemoteError",
    "SerializationError",
    "SyncFuture",
    "TaskFunction",
    "TaskRecord",
    "TaskStatus",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerHandle",
    "WorkerStartError",
    "WorkerStoppedError",
    "carry_context",
    "direct",
]
