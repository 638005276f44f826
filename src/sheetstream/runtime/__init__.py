"""Running CPU-heavy work without blocking the event loop: the queue, the strategies, the process channel."""

from .queue import ProcessingQueue, TaskStream
from .strategies import Strategy, make_strategy

__all__ = ["ProcessingQueue", "Strategy", "TaskStream", "make_strategy"]
