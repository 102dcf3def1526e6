"""S3 notifications on SQS: long polling, concurrent objects, delete only after delivery.

A message is deleted once every object it names has been delivered to every sink or
dead-lettered by name; held-back records are in the state store by then, so they need
nothing from the message. Decisions per outcome:

* delivered / dead-lettered (unreadable, 404) / test event: deleted;
* unknown body: logged with the message id and left alone, so the queue's redrive policy
  moves it to the dead-letter queue after maxReceiveCount;
* anything else failing (a sink, S3, the state store, a defect): nothing of it was kept, and
  the message comes back after ``retry_delay_seconds``;
* ``MustStop`` (a sink no retry can fix): nothing more is deleted and the daemon stops.

The receive runs in its own (daemon) thread so that a signal is answered at once, not after
a 20-second long poll.

Each SQS call costs the forwarder about as much CPU as enriching a few hundred records
(benchmarks/README.md), so calls are made full: a receive asks for a whole batch once there
is room for one, and deletes wait (briefly) to fill a batch of ten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from forwarder import aws
from forwarder.config import ConfigError
from forwarder.config import SqsSource as SqsConfig
from forwarder.metrics import Health, Metrics
from forwarder.errors import defect
from forwarder.pipeline import MustStop, NotDelivered, Pipeline
from forwarder.sources.notifications import UnknownShape, parse
from forwarder.sources.objects import ObjectHandler, transient
from forwarder.sources.s3get import ObjectReader

log = logging.getLogger("forwarder.sqs")

_T = TypeVar("_T")
_STEP_SECONDS = 0.5
_RECEIVE_ERROR_PAUSE = 5.0
_BATCH = 10  # the most SQS takes in one DeleteMessageBatch / ChangeMessageVisibilityBatch
# A partial batch of deletes waits at most this long for more messages to finish. Deleting
# later is safe (a crash before it means a duplicate, never a loss) and is bounded by the
# visibility check in _deletes_due, so the message cannot reappear meanwhile.
_DELETE_WAIT_SECONDS = 1.0


@dataclass(slots=True)
class _Message:
    id: str
    receipt: str
    body: str
    visible_until: float


def _in_background(call: Callable[[], _T]) -> Future[_T]:
    """Run ``call`` in a daemon thread: an abandoned long poll must not hold up the exit."""
    future: Future[_T] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting loop
                future.set_exception(exc)

    threading.Thread(target=run, name="sqs-receive", daemon=True).start()
    return future


NO_SUCH_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


class SqsSource:
    label = "sqs"

    def __init__(self, config: SqsConfig, pipeline: Pipeline, metrics: Metrics, health: Health) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        self.sqs = aws.client("sqs", config.region, config.endpoint_url, pool=config.concurrency + 2)
        s3 = ObjectReader(config.region, config.endpoint_url, pool=config.concurrency + 2)
        self.objects = ObjectHandler(s3, pipeline, metrics, self.label)
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="sqs-object")
        self._receiving: Future[list[dict[str, Any]]] | None = None
        self._receive_after = 0.0
        self._inflight: dict[Future[None], _Message] = {}
        self._delete: list[_Message] = []
        self._delete_since = 0.0
        self.fatal: MustStop | ConfigError | None = None

    # -- the loop's interface -----------------------------------------------------------------

    def step(self) -> int:
        """One turn (at most about half a second): receive, collect finished messages, delete.
        Returns how many messages arrived."""
        if self._receiving is None and self.fatal is None and time.monotonic() >= self._receive_after:
            # A full batch as soon as a worker may run out of work: at most one batch waits
            # behind the busy workers, and each call brings as many messages as the queue has.
            if len(self._inflight) <= self.config.concurrency:
                self._receiving = _in_background(self._receive)
        waiting: list[Future[Any]] = list(self._inflight)
        if self._receiving is not None:
            waiting.append(self._receiving)
        if waiting:
            wait(waiting, timeout=_STEP_SECONDS, return_when=FIRST_COMPLETED)
        else:
            time.sleep(min(_STEP_SECONDS, max(0.0, self._receive_after - time.monotonic())))
        arrived = self._take_received()
        self._collect()
        self._heartbeat()
        self._flush_deletes()
        if self.fatal is not None:
            raise self.fatal
        return arrived

    def busy(self) -> bool:
        return bool(self._inflight)

    def drain(self, timeout: float) -> None:
        """Stop receiving, finish what is in flight within ``timeout``, hand the rest back."""
        if self._receiving is not None:
            receiving, self._receiving = self._receiving, None
            # A long poll still open may yet return messages: make them visible again at once.
            receiving.add_done_callback(lambda done: self._release(_messages(done)))
        for future, message in list(self._inflight.items()):
            if future.cancel():
                del self._inflight[future]
                self._release([message])
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            wait(list(self._inflight), timeout=min(_STEP_SECONDS, deadline - time.monotonic()))
            self._collect()
            self._heartbeat()
            self._flush_deletes()
        self._flush_deletes(force=True)
        for message in self._inflight.values():
            log.warning("message still in work at shutdown: it comes back after its visibility timeout",
                        extra={"message_id": message.id})
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- receiving ---------------------------------------------------------------------------------

    def _receive(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.config.queue_url,
            MaxNumberOfMessages=self.config.max_messages,
            WaitTimeSeconds=self.config.wait_time_seconds,
            VisibilityTimeout=self.config.visibility_timeout_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return answer.get("Messages", [])

    def _take_received(self) -> int:
        if self._receiving is None or not self._receiving.done():
            return 0
        receiving, self._receiving = self._receiving, None
        try:
            messages = receiving.result()
        except Exception as exc:  # noqa: BLE001 - any AWS or network failure: log, pause, retry
            if aws.error_code(exc) in NO_SUCH_QUEUE:  # a wrong URL, region or account: no retry finds it
                self.fatal = ConfigError(f"source.queue_url {self.config.queue_url}: no such queue ({exc}); "
                                         "check the URL, and that the region and the credentials' account are the queue's")
                return 0
            level = logging.WARNING if transient(exc) else logging.ERROR
            log.log(level, "cannot receive from the queue: trying again shortly",
                    extra={"queue": self.config.queue_url, "reason": str(exc), "retry_in_seconds": _RECEIVE_ERROR_PAUSE})
            self.metrics.errors.labels("sqs_receive").inc()
            self._receive_after = time.monotonic() + _RECEIVE_ERROR_PAUSE
            return 0
        self.health.receive()
        self.metrics.last_receive.set_to_current_time()
        self.metrics.messages.labels("received").inc(len(messages))
        until = time.monotonic() + self.config.visibility_timeout_seconds
        for raw in messages:
            message = _Message(raw["MessageId"], raw["ReceiptHandle"], raw.get("Body", ""), until)
            self._inflight[self._pool.submit(self._work, message)] = message
        return len(messages)

    # -- one message ---------------------------------------------------------------------------------

    def _work(self, message: _Message) -> None:
        notification = parse(message.body)
        if notification.ignored:
            log.info("message acknowledged without reading", extra={"message_id": message.id, "reason": notification.ignored})
            return
        for bucket, key in notification.objects:
            self.objects.handle(bucket, key)
        if notification.records:
            self.objects.handle_records(f"sqs:{message.id}", notification.records)

    def _collect(self) -> None:
        for future in [f for f in self._inflight if f.done()]:
            message = self._inflight.pop(future)
            try:
                future.result()
            except UnknownShape as exc:
                log.warning("message of unknown shape left for the queue's redrive policy",
                            extra={"message_id": message.id, "reason": str(exc)})
                self.metrics.messages.labels("unknown").inc()
                self.metrics.errors.labels("unknown_message").inc()
                continue
            except MustStop as exc:
                self.fatal = self.fatal or exc
                self.metrics.errors.labels("sink_fatal").inc()
                continue
            except NotDelivered as exc:
                self._retry_later(message, exc.kind, exc.reason, exc.transient)
                continue
            except Exception as exc:  # noqa: BLE001 - a defect outside the pipeline: retry, never lose the message
                self._retry_later(message, "defect", defect(exc), False)
                continue
            if not self._delete:
                self._delete_since = time.monotonic()
            self._delete.append(message)

    def _retry_later(self, message: _Message, kind: str, reason: str, transient: bool) -> None:
        log.log(logging.WARNING if transient else logging.ERROR, "message not delivered: it comes back later", extra={
            "message_id": message.id, "kind": kind, "reason": reason, "retry_in_seconds": self.config.retry_delay_seconds})
        self.metrics.errors.labels(kind).inc()
        self.metrics.messages.labels("retry").inc()
        self._change_visibility([message], self.config.retry_delay_seconds)

    # -- acknowledgement and visibility ------------------------------------------------------------

    def _flush_deletes(self, force: bool = False) -> None:
        if self.fatal is not None:
            self._delete.clear()  # stop short: a restart re-reads these, duplicates by eventID at worst
            return
        while len(self._delete) >= _BATCH or (self._delete and (force or self._deletes_due())):
            chunk, self._delete = self._delete[:_BATCH], self._delete[_BATCH:]
            self._batch("delete_message_batch", chunk, {})
            self.metrics.messages.labels("deleted").inc(len(chunk))
            self._delete_since = time.monotonic()

    def _deletes_due(self) -> bool:
        """Whether a partial batch of deletes should go now rather than wait for more."""
        now = time.monotonic()
        if not self._inflight or now - self._delete_since >= _DELETE_WAIT_SECONDS:
            return True  # nothing more is coming soon, or it waited long enough
        # Visibility half used up (the heartbeat's own threshold): delete before it can lapse.
        return min(m.visible_until for m in self._delete) - now < self.config.visibility_timeout_seconds / 2

    def _heartbeat(self) -> None:
        # Extend a message whose visibility is half used up, so a large object is not handed
        # to another consumer while it is still in work.
        timeout = self.config.visibility_timeout_seconds
        now = time.monotonic()
        due = [m for f, m in self._inflight.items() if not f.done() and m.visible_until - now < timeout / 2]
        if due:
            self._change_visibility(due, timeout)
            for message in due:
                message.visible_until = now + timeout

    def _release(self, messages: list[_Message]) -> None:
        if messages:
            self._change_visibility(messages, 0)

    def _change_visibility(self, messages: list[_Message], seconds: int) -> None:
        for start in range(0, len(messages), _BATCH):
            self._batch("change_message_visibility_batch", messages[start:start + _BATCH], {"VisibilityTimeout": seconds})

    def _batch(self, operation: str, messages: list[_Message], extra: dict[str, Any]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": m.receipt, **extra} for n, m in enumerate(messages)]
        try:
            answer = getattr(self.sqs, operation)(QueueUrl=self.config.queue_url, Entries=entries)
        except Exception as exc:  # noqa: BLE001 - the message comes back: a duplicate, never a loss
            level = logging.WARNING if transient(exc) else logging.ERROR
            log.log(level, f"{operation} failed: the messages come back, their records are sent again (same eventIDs)",
                    extra={"queue": self.config.queue_url, "reason": str(exc)})
            self.metrics.errors.labels("sqs_acknowledge").inc()
            return
        for failed in answer.get("Failed", []):
            log.error(f"{operation} failed for a message", extra={
                "message_id": messages[int(failed["Id"])].id, "reason": failed.get("Message", failed.get("Code"))})
            self.metrics.errors.labels("sqs_acknowledge").inc()


def _messages(done: Future[list[dict[str, Any]]]) -> list[_Message]:
    if done.cancelled() or done.exception() is not None:
        return []
    return [_Message(m["MessageId"], m["ReceiptHandle"], "", 0.0) for m in done.result()]
