"""A response body read up to the cap, as decoded: gzip and deflate inflated piece by piece.

Pure (zlib only): the send path hands chunks in as they arrive, and a bomb is
given up having held no more than the cap plus one piece.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from engine._core.reply import where
from engine._errors import RemoteError

__all__ = ["Body", "header_dict"]

#: The most a compressed body is inflated by at a time, before it is counted.
PIECE: Final = 64 * 1024
_WBITS: Final = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,  # RFC 9110 8.4.1.3: a recipient treats it as gzip
    "deflate": zlib.MAX_WBITS,
}


class Body:
    """A response body read up to the cap, as decoded.

    A compressed body is inflated at most ``PIECE`` bytes at a time and
    counted piece by piece, so a bomb is given up having held no more than
    the cap plus one piece (and one network chunk).
    """

    __slots__ = ("_cap", "_decoder", "_parts", "_size", "_status", "_url")

    def __init__(
        self, cap: int, headers: Mapping[str, str], status: int, url: str
    ) -> None:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            msg = f"response from {where(url)} is {declared} bytes, over the {cap} cap"
            raise RemoteError(msg, kind="protocol", status=status)
        self._cap = cap
        self._status = status
        self._url = url
        self._parts: list[bytes] = []
        self._size = 0
        coding = headers.get("content-encoding")
        self._decoder = None if coding is None else _decoder(coding, url, status)

    def add(self, chunk: bytes) -> None:
        """Take one chunk as received (still encoded)."""
        decoder = self._decoder
        if decoder is None:
            self._keep(chunk)
        else:
            for piece in decoder.pieces(chunk):
                self._keep(piece)

    def result(self) -> bytes:
        """Return the whole body, decoded."""
        if self._decoder is not None:
            self._keep(self._decoder.flush())
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _keep(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._cap:
            msg = f"response from {where(self._url)} is over the {self._cap}-byte cap"
            raise RemoteError(msg, kind="protocol", status=self._status)
        self._parts.append(chunk)


def _decoder(coding: str, url: str, status: int) -> _Decoder | _Undecodable | None:
    """Return a decoder for a Content-Encoding value (``None``: nothing to decode).

    A coding not decoded here (only ``gzip``, ``deflate`` and ``identity``
    are advertised), or more than one, gets a decoder that refuses the first
    byte: an empty body (a 204, a 304) in any coding is still read.
    """
    codings = [c.strip().lower() for c in coding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in _WBITS:
        return _Decoder(codings[0], url, status)
    return _Undecodable(coding, url, status)


class _Undecodable:
    """A body in a coding this module does not decode: a protocol error."""

    __slots__ = ("_coding", "_status", "_url")

    def __init__(self, coding: str, url: str, status: int) -> None:
        self._coding = coding
        self._url = url
        self._status = status

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """Refuse ``data`` (an empty body, as a 204 has, passes)."""
        if not data:
            return iter(())
        msg = (
            f"response from {where(self._url)} has Content-Encoding "
            f"{self._coding[:40]!r}; only gzip and deflate are decoded"
        )
        raise RemoteError(msg, kind="protocol", status=self._status)

    def flush(self) -> bytes:
        """Return nothing: nothing was decoded."""
        return b""


class _Decoder:
    """Inflates gzip or deflate, never more than it is allowed per call."""

    __slots__ = ("_coding", "_retry_raw", "_status", "_url", "_zlib")

    def __init__(self, coding: str, url: str, status: int) -> None:
        self._coding = coding
        self._url = url
        self._status = status
        self._zlib = zlib.decompressobj(_WBITS[coding])
        # Servers send "deflate" both zlib-wrapped (RFC 9110) and raw: try
        # the wrapper first, as httpx and aiohttp do.
        self._retry_raw = coding == "deflate"

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """Yield what ``data`` inflates to, ``PIECE`` bytes at most at a time."""
        if not data:
            return  # the raw-deflate retry stays open for real bytes
        while True:
            out = self._inflate(data)
            if out:
                yield out
            data = self._zlib.unconsumed_tail
            # A full piece may leave output pending with no input left.
            if not data and len(out) < PIECE:
                return

    def _inflate(self, data: bytes) -> bytes:
        try:
            try:
                out = self._zlib.decompress(data, PIECE)
            except zlib.error:
                if not self._retry_raw:
                    raise
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._zlib.decompress(data, PIECE)
        except zlib.error as exc:
            msg = f"response from {where(self._url)} is not valid {self._coding}"
            raise RemoteError(msg, kind="protocol", status=self._status) from exc
        self._retry_raw = False
        return out

    def flush(self) -> bytes:
        """Return what is left once all input is in (nothing, in practice)."""
        try:
            return self._zlib.flush()
        except zlib.error as exc:  # pragma: no cover - zlib reports errors on input
            msg = f"response from {where(self._url)} is not valid {self._coding}"
            raise RemoteError(msg, kind="protocol", status=self._status) from exc


def header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Return raw header pairs as ``header_map`` does, decoded as httpx decodes them.

    The same function reads both routes' heads, so a reply's headers do not
    depend on the transport: ASCII, else UTF-8, else Latin-1, for all at once.
    """
    pairs = raw if isinstance(raw, (list, tuple)) else list(raw)
    for encoding in ("ascii", "utf-8"):
        try:
            return _joined(pairs, encoding)
        except UnicodeDecodeError:
            continue
    return _joined(pairs, "iso-8859-1")


def _joined(pairs: Iterable[tuple[bytes, bytes]], encoding: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower().decode(encoding)
        text = value.decode(encoding)
        seen = result.get(key)
        result[key] = text if seen is None else f"{seen}, {text}"
    return result
