"""``forwarder run``: the long-running loop over an SQS or S3-polling source, until a signal.

Each turn of the loop asks the source for one short step; every few seconds a tick releases
held records whose wait ended, forgets expired sessions, refreshes the organization and the
gauges. SIGTERM/SIGINT stop the receiving, let what is in flight finish (bounded), close the
sinks and exit 0; a sink that no retry can fix exits 3 with the message, acknowledging
nothing more; a configuration or state store unusable at start exits 2 naming it.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from forwarder.config import Config, ConfigError, S3Source, SqsSource
from forwarder.deadletter import DeadLetter
from forwarder.enrich import Enricher
from forwarder.enrich.policy import Organization, Policy, StaticOrganization
from forwarder.metrics import CountingSink, Health, Metrics, serve
from forwarder.organization import DiscoveredOrganization
from forwarder.errors import defect
from forwarder.pipeline import MustStop, NotDelivered, Pipeline
from forwarder.sinks import build_batched
from forwarder.state import StateStore, open_store
from forwarder.state.base import StateError

log = logging.getLogger("forwarder.daemon")

TICK_SECONDS = 5.0
EXIT_CONFIG = 2
EXIT_FATAL = 3


class Source(Protocol):
    label: str

    def step(self) -> int: ...

    def busy(self) -> bool: ...

    def drain(self, timeout: float) -> None: ...


@dataclass(slots=True)
class Runtime:
    """What every long-running command builds from the configuration."""

    config: Config
    store: StateStore
    organization: Organization
    metrics: Metrics
    pipeline: Pipeline

    def close(self) -> None:
        for sink in self.pipeline.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - one sink failing to close must not stop the others
                log.error("sink did not close cleanly", extra={"sink": sink.name, "reason": str(exc)})
        self.store.close()


def build_runtime(config: Config, max_object_bytes: int) -> Runtime:
    store = open_store(config.state)
    organization: Organization = (
        DiscoveredOrganization(config.organization, store) if config.organization.discover
        else StaticOrganization(config.organization.accounts)
    )
    metrics = Metrics()
    sinks = [build_batched(sink, lambda built: CountingSink(built, metrics)) for sink in config.sinks]
    enricher = Enricher(config, store, Policy(config, organization))
    pipeline = Pipeline(enricher, sinks, DeadLetter(config.dead_letter.path), max_object_bytes)
    return Runtime(config, store, organization, metrics, pipeline)


class Daemon:
    def __init__(self, config: Config, *, exit_when_idle: float | None = None, shutdown_timeout: float = 30.0) -> None:
        source = config.source
        if not isinstance(source, SqsSource | S3Source):
            raise ConfigError("source: `forwarder run` reads type sqs or s3 (for local files use `forwarder enrich`)")
        self.exit_when_idle = exit_when_idle
        self.shutdown_timeout = shutdown_timeout
        self.stop = threading.Event()
        self.runtime = build_runtime(config, source.max_object_bytes)
        self.health = Health(config.metrics.stale_after_seconds)
        try:
            self.source: Source = self._source(config)
            self._stop_server = serve(config.metrics.listen, self.runtime.metrics, self.health) if config.metrics.listen else None
        except BaseException:
            self.runtime.close()  # nothing was read: give the store and the sinks back before exiting
            raise

    def _source(self, config: Config) -> Source:
        runtime = self.runtime
        if isinstance(config.source, SqsSource):
            from forwarder.sources.sqs import SqsSource as Sqs

            return Sqs(config.source, runtime.pipeline, runtime.metrics, self.health)
        from forwarder.sources.s3poll import S3Poller

        assert isinstance(config.source, S3Source)
        return S3Poller(config.source, runtime.pipeline, runtime.store, runtime.metrics, self.health, self.stop)

    def _signal(self, number: int, _frame: object) -> None:
        log.info("signal received: finishing what is in flight, then exiting", extra={"signal": signal.Signals(number).name})
        self.stop.set()

    def run(self) -> int:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._signal)
        log.info("forwarder started", extra={"source": self.source.label, "state": self.runtime.config.state.type,
                                             "sinks": [sink.name for sink in self.runtime.pipeline.sinks]})
        # What start-up built (modules, clients, the configuration: ~140,000 objects) lives as
        # long as the process: left out of the collector's full passes, each takes about 20 ms
        # instead of 45-90 (some 4% of the daemon's CPU on small objects, benchmarks/README.md).
        gc.freeze()
        code = 0
        last_activity = next_tick = time.monotonic()
        try:
            while not self.stop.is_set():
                if self.source.step() or self.source.busy():
                    last_activity = time.monotonic()
                self.health.beat()
                now = time.monotonic()
                if now >= next_tick:
                    self.tick()
                    next_tick = now + TICK_SECONDS
                if self.exit_when_idle is not None and now - last_activity >= self.exit_when_idle:
                    if self._claims_elsewhere():
                        continue  # another process's claims may lapse and their records come back here
                    log.info("nothing arrived for a while: exiting", extra={"idle_seconds": self.exit_when_idle})
                    break
        except MustStop as exc:
            log.error(f"stopping: a sink cannot deliver and no retry will fix it: {exc.reason}",
                      extra={"reason": exc.reason})
            code = EXIT_FATAL
        except ConfigError as exc:
            log.error(f"stopping: {exc}", extra={"reason": str(exc)})
            code = EXIT_CONFIG
        self.stop.set()
        self.source.drain(self.shutdown_timeout if code == 0 else 0.0)
        if self._stop_server:
            self._stop_server()
        self.runtime.close()
        log.info("forwarder stopped", extra={"exit_code": code})
        return code

    def tick(self) -> None:
        """Housekeeping that must not wait for input: held records due by the stream clock.
        A failure here is logged and tried again at the next tick; only a fatal sink stops."""
        runtime = self.runtime
        try:
            runtime.metrics.outcome(self.source.label, runtime.pipeline.release_due())
        except MustStop:
            raise
        except NotDelivered as exc:
            log.log(logging.WARNING if exc.transient else logging.ERROR,
                    "held records not delivered: they are released again at the next tick",
                    extra={"kind": exc.kind, "reason": exc.reason, "retry_in_seconds": TICK_SECONDS})
            runtime.metrics.errors.labels(exc.kind).inc()
        for task in (runtime.pipeline.forget_expired, self._refresh, self._gauges):
            try:
                task()
            except StateError as exc:
                log.log(logging.WARNING if exc.transient else logging.ERROR,
                        "housekeeping failed: it is tried again at the next tick",
                        extra={"kind": "state", "reason": str(exc), "retry_in_seconds": TICK_SECONDS})
                runtime.metrics.errors.labels("state").inc()
            except NotDelivered as exc:
                log.error("housekeeping failed: it is tried again at the next tick",
                          extra={"kind": exc.kind, "reason": exc.reason, "retry_in_seconds": TICK_SECONDS})
                runtime.metrics.errors.labels(exc.kind).inc()
            except Exception as exc:  # noqa: BLE001 - a defect in housekeeping must not stop delivery
                log.error("housekeeping failed: it is tried again at the next tick",
                          extra={"kind": "defect", "reason": defect(exc), "retry_in_seconds": TICK_SECONDS})
                runtime.metrics.errors.labels("defect").inc()

    def _claims_elsewhere(self) -> bool:
        try:
            return self.runtime.store.claims_elsewhere()
        except StateError:
            return False  # the store is away: nothing can be released here either

    def _refresh(self) -> None:
        if isinstance(self.runtime.organization, DiscoveredOrganization):
            self.runtime.organization.refresh()

    def _gauges(self) -> None:
        self.runtime.metrics.held.set(self.runtime.store.held_count())
        self.runtime.metrics.sessions.set(self.runtime.store.count("session"))


def run(config: Config, exit_when_idle: float | None, shutdown_timeout: float) -> int:
    try:
        daemon = Daemon(config, exit_when_idle=exit_when_idle, shutdown_timeout=shutdown_timeout)
    except (StateError, ConfigError) as exc:
        # Nothing was read yet: exit 2 so that systemd's RestartPreventExitStatus stops the loop.
        log.error(f"cannot start: {exc}", extra={"reason": str(exc), "exit_code": EXIT_CONFIG})
        return EXIT_CONFIG
    code = daemon.run()
    deadline = time.monotonic() + 2.0  # idle pool workers take a moment to see the shutdown
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        # A worker blocked past the shutdown budget: its message comes back after its
        # visibility timeout. Exiting now is what keeps the shutdown bounded.
        log.warning("exiting with work still blocked", extra={"threads": stuck})
        logging.shutdown()
        os._exit(code)
    return code
