"""The due-time heap and path encoding."""

from __future__ import annotations

import gc

import pytest

from engine._remote import encode_path_value, origin, where
from engine._scheduler import DueHeap


class _Item:
    def __init__(self, key: str) -> None:
        self.key = key
        self.generation = 0


def _heap(*items: _Item) -> DueHeap[_Item]:
    return DueHeap({item.key: item for item in items})


def test_heap_pops_in_due_order() -> None:
    """Items come out earliest first, only once due."""
    a, b, c = _Item("a"), _Item("b"), _Item("c")
    heap = _heap(a, b, c)
    heap.push(3.0, c)
    heap.push(1.0, a)
    heap.push(2.0, b)

    first = heap.pop_due(2.5)
    second = heap.pop_due(2.5)
    third = heap.pop_due(2.5)

    assert [first, second, third] == [a, b, None]
    assert heap.next_due() == 3.0


def test_rescheduled_item_leaves_a_stale_entry_that_is_skipped() -> None:
    """A new generation makes the old heap entry stale."""
    item = _Item("a")
    heap = _heap(item)
    heap.push(1.0, item)
    item.generation += 1
    heap.push(5.0, item)

    assert heap.pop_due(2.0) is None
    assert heap.next_due() == 5.0
    assert heap.pop_due(5.0) is item


def test_an_entry_whose_key_is_gone_is_skipped() -> None:
    """Items looked up by key: one no longer in the mapping is never returned."""
    items = {"a": _Item("a"), "b": _Item("b")}
    heap = DueHeap(items)
    heap.push(1.0, items["a"])
    heap.push(2.0, items["b"])
    del items["a"]

    assert heap.next_due() == 2.0
    assert heap.pop_due(3.0) is items["b"]
    assert len(heap) == 0


def test_heap_entries_are_not_tracked_by_the_garbage_collector() -> None:
    """Entries hold the key, not the item: after a collection, none is GC-tracked."""
    items = {f"j{i}": _Item(f"j{i}") for i in range(100)}
    heap = DueHeap(items)
    for i, item in enumerate(items.values()):
        heap.push(float(i), item)
    gc.collect()

    entries = heap._heap
    assert len(entries) == 100
    assert not any(gc.is_tracked(entry) for entry in entries)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("abc", "abc"),
        ("../admin", "..%2Fadmin"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("a b?c#d", "a%20b%3Fc%23d"),
    ],
)
def test_path_values_cannot_change_the_path(value: str, encoded: str) -> None:
    """Job ids are percent-encoded; slashes and dot segments stay literal."""
    assert encode_path_value(value) == encoded


def test_origin_makes_default_ports_explicit() -> None:
    """http://h and http://h:80 are the same origin; https differs."""
    assert origin("http://Example.com/x") == origin("http://example.com:80/y")
    assert origin("https://example.com") != origin("http://example.com")


def test_where_never_shows_the_query() -> None:
    """Messages name host and path only: queries can carry tokens."""
    assert where("https://h.example/p/q?sig=SECRET&x=1") == "h.example/p/q"
