"""OpenAPI descriptions of canghai routes the router cannot read from a signature.

Given at ``register`` time as ``meta={"openapi": {...}}`` (butterfly-router's OpenAPI document
merges them into the route's operation; a router that does not know the key ignores it).
"""

from __future__ import annotations

from typing import Any

from butterfly_mq.producer import MAX_RETRIES, MAX_SECONDS

#: A topic as ``keys.check_topic`` accepts it: ``/app/handler``, no ``//``.
TOPIC = {"type": "string", "pattern": r"^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$", "maxLength": 201}
#: A message id as ``keys.check_msg_id`` accepts it.
MSG_ID = {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,128}$"}
SECONDS = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}


def enqueue_many(most: int) -> dict[str, Any]:
    """``POST /canghai/api/enqueue_many``: its JSON body.

    :param most: ``[mq] enqueue_many_max``
    """
    message = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"params": {"type": "object"}, "msg_id": MSG_ID},
    }
    body = {
        "type": "object",
        "additionalProperties": False,
        "required": ["topic", "messages"],
        "properties": {
            "topic": TOPIC,
            "messages": {"type": "array", "maxItems": most, "items": message},
            "delay": SECONDS,
            "ttl": SECONDS,
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
        },
    }
    return {
        "post": {
            "summary": "queue many messages of one topic in one round trip; a status per message",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"503": None},
        }
    }
