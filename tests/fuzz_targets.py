"""Fuzz targets: what must hold for any input to the parsers Moksha exposes to peers.

Each target takes raw bytes, as coverage-guided fuzzers give them, and raises
``AssertionError`` when a property fails; any other exception escaping is a
crash.  The hypothesis tests run them with a bounded number of examples in the
suite; ``benchmarks/fuzz.py`` runs them under atheris for as long as you like.

* :func:`stomp_stream` — the STOMP frame parser (``hub/backends/stomp_frames.py``):
  only :class:`StompProtocolError` for bad input; the same frames however the
  bytes are cut; each frame parsed encodes back to itself.
* :func:`livesocket_frame` — a live-socket client frame (``livesocket/protocol.py``
  on the formats of ``livesocket/frames.py``): never an exception, and every
  reply is a well-formed ``__error__`` frame.
* :func:`config_ini` and :func:`config_value` — the config loader: a
  :class:`~moksha.config.Config` or a :class:`~moksha.errors.ConfigError`
  naming the key or file, nothing else.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from moksha.config import KEYS, load_config
from moksha.errors import ConfigError
from moksha.hub.backends.stomp_frames import (
    Frame,
    FrameParser,
    StompProtocolError,
    encode_frame,
)
from moksha.livesocket.frames import ERROR, Close, Publish, Reply, Subscribe, Unsubscribe
from moksha.livesocket.policy import LiveSocketPolicy
from moksha.livesocket.protocol import Session

__all__ = ["TARGETS", "config_ini", "config_value", "livesocket_frame", "stomp_stream"]

# Small limits, so that fuzzed input reaches them.
_HEADER_LIMIT = 512
_BODY_LIMIT = 1024


def _parse(chunks: list[bytes]) -> tuple[list[Frame], str | None]:
    """Frames parsed from ``chunks`` fed in order, and the error that stopped it, if any."""
    parser = FrameParser(max_header_size=_HEADER_LIMIT, max_body_size=_BODY_LIMIT)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except StompProtocolError as exc:
        return parser.events(), str(exc)
    return parser.events(), None


def _without_length(frame: Frame) -> Frame:
    headers = {k: v for k, v in frame.headers.items() if k != "content-length"}
    return Frame(frame.command, headers, frame.body)


def stomp_stream(data: bytes) -> None:
    """The STOMP parser on any bytes: whole, then cut every ``n`` bytes (``n`` from byte 0)."""
    whole, error = _parse([data])
    step = (data[0] % 7 + 1) if data else 1
    cut, cut_error = _parse([data[i : i + step] for i in range(0, len(data), step)])
    assert (error is None) == (cut_error is None), (error, cut_error)
    if error is None:
        assert cut == whole
    else:
        # Cut short, the parser may meet a limit before the frame it was in completes.
        assert cut[: len(whole)] == whole[: len(cut)]
    for frame in whole:
        try:
            encoded = encode_frame(frame)
        except StompProtocolError:
            # Only the handshake frames, which are never escaped, can hold what
            # cannot be written back (CR in a value, ':' in a name).
            assert frame.command in ("CONNECT", "STOMP", "CONNECTED"), frame
            continue
        again, again_error = _parse([encoded])
        if again_error is not None:  # re-encoding adds content-length: a limit may bite
            assert "max_" in again_error, again_error
            continue
        assert [_without_length(f) for f in again] == [_without_length(frame)]


_POLICY = LiveSocketPolicy(
    max_frame_bytes=4096,
    max_subscriptions=5,
    publish_allow=("org.example.#",),
    protected=("org.private.#",),
    token_secret="s" * 32,
)


def livesocket_frame(data: bytes) -> None:
    """One client frame, as a binary frame and as text, in a fresh session each."""
    texts: list[str | bytes] = [data, data.decode("utf-8", "replace")]
    for frame in texts:
        actions = Session(_POLICY, now=lambda: 0.0, clock=lambda: 0.0).receive(frame)
        assert isinstance(actions, list)
        for action in actions:
            assert isinstance(action, Subscribe | Unsubscribe | Publish | Reply | Close), action
            if isinstance(action, Reply):
                reply = json.loads(action.frame)
                assert reply["topic"] == ERROR and isinstance(reply["body"]["error"], str)
            if isinstance(action, Close):
                assert len(action.reason.encode()) <= 123, action


def config_ini(data: bytes) -> None:
    """Any bytes as the INI file: a Config or a ConfigError naming the file or a key."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.ini"
        path.write_bytes(data)
        try:
            load_config(path, environ={})
        except ConfigError as exc:
            assert str(path) in str(exc) or exc.key is not None, str(exc)


def config_value(data: bytes) -> None:
    """Any text as the value of a key (chosen by byte 0), from a file, the environment, code."""
    if not data:
        return
    key = KEYS[data[0] % len(KEYS)]
    value = data[1:].decode("utf-8", "replace")
    for environ, overrides in (
        ({key.env_var: value.replace("\0", "")}, None),
        ({}, {key.name: value}),
    ):
        try:
            load_config(environ=environ, overrides=overrides, search=False)
        except ConfigError as exc:
            assert exc.key == key.name, (exc.key, key.name)


TARGETS = {
    "stomp": stomp_stream,
    "livesocket": livesocket_frame,
    "config_ini": config_ini,
    "config_value": config_value,
}
"""The targets by name, as ``benchmarks/fuzz.py`` takes them."""
