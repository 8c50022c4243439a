"""The due-time heap and path encoding."""

from __future__ import annotations

import pytest

from engine.remote import encode_path_value, origin, where
from engine.scheduler import DueHeap


class _Item:
    def __init__(self, name: str) -> None:
        self.name = name
        self.generation = 0


def test_heap_pops_in_due_order() -> None:
    """Items come out earliest first, only once due."""
    heap: DueHeap[_Item] = DueHeap()
    a, b, c = _Item("a"), _Item("b"), _Item("c")
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
    heap: DueHeap[_Item] = DueHeap()
    item = _Item("a")
    heap.push(1.0, item)
    item.generation += 1
    heap.push(5.0, item)

    assert heap.pop_due(2.0) is None
    assert heap.next_due() == 5.0
    assert heap.pop_due(5.0) is item


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
