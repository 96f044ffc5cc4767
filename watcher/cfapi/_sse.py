"""Server-sent events (text/event-stream) decoder, per the WHATWG HTML "event stream" rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    """Feed lines (without their terminators); get an event each time a blank line ends one.

    `last_event_id` persists across events as the spec says: an event without `id:` keeps the
    previous id, which is what a reconnect must send as Last-Event-ID.
    """

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self._event = ""
        self._data: list[str] = []
        self._has_data = False

    def decode(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment, e.g. the keep-alive ": ping"
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        has_data, event = self._has_data, self._event
        data = "\n".join(self._data)
        self._event, self._data, self._has_data = "", [], False
        if not has_data:
            return None  # the spec drops events with no data lines
        return ServerSentEvent(event=event or "message", data=data, id=self.last_event_id, retry=self.retry)


def _split_lines(chunks: Iterable[str], state: list[str]) -> Iterator[str]:
    # CRLF, LF and lone CR all end a line; a CR at a chunk end may pair with a LF in the next.
    for chunk in chunks:
        buf = state[0] + chunk
        state[0] = ""
        start = 0
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch == "\n":
                yield buf[start:i]
                start = i + 1
            elif ch == "\r":
                if i + 1 == len(buf):
                    state[0] = buf[start:]
                    start = len(buf)
                    break
                yield buf[start:i]
                if buf[i + 1] == "\n":
                    i += 1
                start = i + 1
            i += 1
        state[0] = state[0] or buf[start:]


def iter_sse(chunks: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events from decoded text chunks of any size (a complete stream, for tests and files)."""
    decoder, state = SSEDecoder(), [""]
    for line in _split_lines(chunks, state):
        event = decoder.decode(line)
        if event is not None:
            yield event


async def aiter_sse(
    chunks: AsyncIterable[str], decoder: SSEDecoder | None = None
) -> AsyncIterator[ServerSentEvent]:
    """Events from an async stream of text chunks (httpx `aiter_text()`)."""
    decoder = decoder or SSEDecoder()
    state = [""]
    async for chunk in chunks:
        for line in _split_lines((chunk,), state):
            event = decoder.decode(line)
            if event is not None:
                yield event
