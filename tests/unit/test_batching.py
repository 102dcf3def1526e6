"""The batching in front of the sinks: the documents of objects in work go out together, and
each object gets back the verdicts on its own documents, or the failure of the send it was in."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from forwarder.document import Document
from forwarder.sinks.base import Delivery, Rejected, SinkError
from forwarder.sinks.batching import Batching, Bounds


def _documents(source: str, count: int) -> list[Document]:
    return [Document({"eventID": f"{source}-{n}"}, None, source, b'{"eventID":"%s-%d"}' % (source.encode(), n))
            for n in range(count)]


class Refusing:
    """Refuses documents whose eventID ends in ``-poison``; fails a whole send naming ``fail``."""

    name = "test"

    def __init__(self, fail: str | None = None, delay: float = 0.0) -> None:
        self.sends: list[list[str]] = []
        self.fail = fail
        self.delay = delay
        self.closed = 0
        self._lock = threading.Lock()

    def send(self, documents: Sequence[Document]) -> Delivery:
        ids = [d.record["eventID"] for d in documents]
        with self._lock:
            self.sends.append(ids)
        time.sleep(self.delay)
        if self.fail and any(i.startswith(self.fail) for i in ids):
            raise SinkError(f"refused a send holding {self.fail}")
        return Delivery([Rejected(d, "poisoned") for d in documents if d.record["eventID"].endswith("poison")])

    def close(self) -> None:
        self.closed += 1


def _send_all(batching: Batching, objects: dict[str, list[Document]]) -> dict[str, Delivery | BaseException]:
    def one(name: str) -> Delivery | BaseException:
        try:
            return batching.send(objects[name])
        except SinkError as exc:
            return exc

    with ThreadPoolExecutor(len(objects)) as pool:
        return dict(zip(objects, pool.map(one, objects)))


def test_objects_in_work_together_share_sends_and_each_gets_its_own_verdicts() -> None:
    sink = Refusing(delay=0.05)
    batching = Batching([sink], Bounds(max_documents=1000, max_bytes=1 << 20, linger=0.05))
    objects = {f"o{n}": _documents(f"o{n}", 5) for n in range(12)}
    objects["o3"].append(Document({"eventID": "o3-poison"}, None, "o3", b'{"eventID":"o3-poison"}'))
    results = _send_all(batching, objects)
    batching.close()
    sent = [i for ids in sink.sends for i in ids]
    assert sorted(sent) == sorted(d.record["eventID"] for docs in objects.values() for d in docs)  # each once
    assert len(sink.sends) < len(objects)  # fewer sends than objects
    for name, result in results.items():
        assert isinstance(result, Delivery)
        assert [r.document.record["eventID"] for r in result.rejected] == (["o3-poison"] if name == "o3" else [])
    assert sink.closed == 1


def test_a_failed_send_fails_the_objects_in_it_and_no_others() -> None:
    sink = Refusing(fail="bad")
    batching = Batching([sink], Bounds(max_documents=10, max_bytes=1 << 20, linger=0.05))
    objects = {"bad": _documents("bad", 10), **{f"ok{n}": _documents(f"ok{n}", 10) for n in range(3)}}
    results = _send_all(batching, objects)  # ten documents a send: one object each
    batching.close()
    assert all(len(ids) == 10 for ids in sink.sends)
    assert isinstance(results["bad"], SinkError)
    assert all(isinstance(results[f"ok{n}"], Delivery) and not results[f"ok{n}"].rejected for n in range(3))


def test_bounds_cut_between_objects_and_a_large_object_goes_alone() -> None:
    sink = Refusing()
    batching = Batching([sink], Bounds(max_documents=10, max_bytes=1 << 20, linger=0.2))
    assert batching.send(_documents("big", 25)).rejected == []  # beyond the bound: sent whole, at once
    objects = {f"o{n}": _documents(f"o{n}", 4) for n in range(6)}
    _send_all(batching, objects)
    batching.close()
    assert sink.sends[0] == [f"big-{n}" for n in range(25)]
    assert all(len(ids) <= 10 for ids in sink.sends[1:])
    assert sorted(i for ids in sink.sends[1:] for i in ids) == sorted(f"o{n}-{m}" for n in range(6) for m in range(4))


def test_several_workers_send_at_once_and_close_sends_what_is_left() -> None:
    both_in = threading.Barrier(2, timeout=10)

    class Meeting(Refusing):
        def send(self, documents: Sequence[Document]) -> Delivery:
            both_in.wait()  # passes only while the other worker is inside a send too
            return super().send(documents)

    sinks = [Meeting(), Meeting()]
    batching = Batching(sinks, Bounds(max_documents=5, max_bytes=1 << 20, linger=0.01))
    objects = {f"o{n}": _documents(f"o{n}", 5) for n in range(2)}
    results = _send_all(batching, objects)
    batching.close()
    assert all(isinstance(r, Delivery) for r in results.values())
    assert [len(sink.sends) for sink in sinks] == [1, 1]
    assert [sink.closed for sink in sinks] == [1, 1]
    with pytest.raises(RuntimeError, match="after close"):
        batching.send(_documents("late", 1))
