"""Dead letters: a message that failed for good, as the message published in its place.

A message a consumer failed on ``moksha.max_retries`` times (or that failed
its schema) goes to ``moksha.dead_letter_topic`` (``{topic}`` replaced by its
topic), its payload unchanged, with headers saying what failed, where and
how often.  A dead letter that fails in turn is dropped (and logged), so
nothing loops.
"""

from __future__ import annotations

import logging

from moksha.hub.handling import ATTEMPT_HEADER
from moksha.message import Message

__all__ = ["DEAD_LETTER_HEADER", "dead_letter"]

log = logging.getLogger("moksha.hub")

DEAD_LETTER_HEADER = "moksha-dead-letter"
"""Set on a dead letter: the topic it failed on."""


def dead_letter(
    message: Message, error: BaseException, attempts: int, consumer: str, topic: str
) -> Message | None:
    """The dead letter of ``message``; None when it is a dead letter already (logged).

    Args:
        message: the message that failed for good.
        error: the last error ``consume`` (or the schema check) raised.
        attempts: how many times it was tried.
        consumer: the name of the consumer that failed.
        topic: ``moksha.dead_letter_topic``, with ``{topic}`` for the message's topic.
    """
    if DEAD_LETTER_HEADER in message.headers:
        fields = {"topic": message.topic, "consumer": consumer, "message_id": message.id}
        log.error("%s: dead letter %s failed as well; dropped", consumer, message.id, extra=fields)
        return None
    description = f"{type(error).__name__}: {error}".replace("\n", " ")[:500]
    headers = {
        **message.headers,
        DEAD_LETTER_HEADER: message.topic,
        "moksha-original-id": message.id,
        "moksha-error": description,
        "moksha-attempts": str(attempts),
        "moksha-consumer": consumer,
    }
    headers.pop(ATTEMPT_HEADER, None)
    return Message(
        topic.format(topic=message.topic),
        headers=headers,
        payload=message.payload,
        content_type=message.content_type,
    )
