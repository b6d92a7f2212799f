"""The task record every call carries: its status and a JSON-friendly snapshot."""

from __future__ import annotations

import datetime
import enum
from typing import Any, Protocol, cast

import pydantic

__all__ = ["Recorded", "TaskRecord", "TaskStatus", "record_of", "utc_datetime"]


class TaskStatus(str, enum.Enum):
    """Where a call is in its life."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


class TaskRecord(pydantic.BaseModel):
    """A snapshot of one call's record; serialises to JSON with ``model_dump_json()``."""

    model_config = pydantic.ConfigDict(frozen=True, arbitrary_types_allowed=True)

    task_id: str
    status: TaskStatus
    priority: int
    worker: str | None
    submitted_at: datetime.datetime
    started_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    attempts: int
    result: Any = None
    error: str | None = None

    @pydantic.field_serializer("result")
    def _serialize_result(self, value: Any) -> Any:
        try:
            pydantic.TypeAdapter(Any).dump_python(value, mode="json")
        except Exception:
            return repr(value)
        return value


def utc_datetime(value: float | None) -> datetime.datetime | None:
    """A ``time.time()`` value as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)


class Recorded(Protocol):
    """A :class:`~aioconc.Future`, as far as its record needs one (declared here, below it)."""

    priority: int
    worker: str | None
    submitted_at: float
    started_at: float | None
    completed_at: float | None
    attempts: int

    @property
    def task_id(self) -> str: ...


def record_of(
    future: Recorded, status: TaskStatus, result: Any, error: BaseException | None
) -> TaskRecord:
    """``future``'s record now, given its ``status`` and its outcome so far."""
    return TaskRecord(
        task_id=future.task_id,
        status=status,
        priority=future.priority,
        worker=future.worker,
        submitted_at=cast(datetime.datetime, utc_datetime(future.submitted_at)),
        started_at=utc_datetime(future.started_at),
        completed_at=utc_datetime(future.completed_at),
        attempts=future.attempts,
        result=result,
        error=f"{type(error).__name__}: {error}" if error is not None else None,
    )
