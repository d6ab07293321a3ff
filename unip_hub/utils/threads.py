"""Pipeline stages in threads that hand their errors to the main thread: a :class:`Background` producer and a
:class:`Worker` consumer, each behind a bounded queue (a video: frames read ahead, results written behind)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Background", "Worker"]

_DONE = object()


class _Failed:
    """An exception raised in a background thread, handed to the main thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Background:
    """Runs ``produce(put)`` in a daemon thread; :meth:`items` yields what it puts and re-raises its error."""

    def __init__(self, produce: Callable[[Callable[[Any], None]], None], size: int) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(produce,), daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self, produce: Callable[[Callable[[Any], None]], None]) -> None:
        try:
            produce(self._put)
        except BaseException as error:  # handed to the consumer
            self._put(_Failed(error))
        self._put(_DONE)

    def items(self) -> Iterator[Any]:
        """What the thread produces, in order."""
        while True:
            item = self.queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class Worker:
    """Consumes submitted items (``handle(item)``) in a thread, or inline when ``background`` is false; a handler's
    error surfaces at the next submit or at close (inline: at once)."""

    def __init__(self, handle: Callable[[Any], None], size: int, background: bool = True) -> None:
        self.handle, self.error = handle, None
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.thread = threading.Thread(target=self._run, daemon=True) if background else None
        if self.thread is not None:
            self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not _DONE:
            if self.error is None:
                try:
                    self.handle(item)
                except BaseException as error:  # re-raised in the main thread
                    self.error = error

    def submit(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            self.handle(item)
            return
        self.queue.put(item)

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(_DONE)
            self.thread.join()
        if self.error is not None:
            raise self.error
