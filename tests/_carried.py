"""A module-level ContextVar that its module does not register (as a library's would be)."""

from __future__ import annotations

import contextvars

trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="no-trace")
