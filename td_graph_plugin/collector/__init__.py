"""The collector engine and its three collection modes (window, delta, snapshot)."""

from .context import RunStats, SourceRun, make_record
from .engine import COLLECTORS, Engine, Job, JobResult
from .sink import Sink, SyncSink

__all__ = ["COLLECTORS", "Engine", "Job", "JobResult", "RunStats", "Sink", "SourceRun", "SyncSink", "make_record"]
