"""The collector engine, its collection modes (window, delta, snapshot) and crash recovery."""

from .context import RunStats, SourceRun, make_record
from .engine import Engine, Job, JobResult
from .sink import Sink, SyncSink

__all__ = ["Engine", "Job", "JobResult", "RunStats", "Sink", "SourceRun", "SyncSink", "make_record"]
