"""The {{name}} connector: forwards every event it receives, as signed JSON, to one URL.

componentize-py turns this module into a WebAssembly component of the `connector` world
(wit/connector.wit). The host calls the methods of `Handler` below; everything the
connector does outside its own memory goes through the host's imports (`http.send` here).
"""

import hashlib
import hmac
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import http, types

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["url", "secret"],
    "properties": {
        "url": {
            "type": "string",
            "format": "uri",
            "description": "Where every event is POSTed.",
        },
        "secret": {
            "type": "string",
            "writeOnly": True,
            "minLength": 16,
            "description": "Key of the HMAC-SHA256 signature sent in x-recoco-signature.",
        },
    },
    "additionalProperties": False,
}


def sign(secret, body):
    """`sha256=` and the lowercase hex HMAC-SHA256 of `body` keyed with `secret` (bytes)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# componentize-py snapshots the interpreter once this module is imported, and a module
# not imported by then cannot be imported at run time (the component has no files):
# hmac imports `warnings` on its first use, so sign once now.
sign(b"warm-up", b"")


def permanent(message):
    return Err(types.Error(retryable=False, message=message, retry_after_ms=None))


def retryable(message, retry_after_ms=None):
    return Err(types.Error(retryable=True, message=message, retry_after_ms=retry_after_ms))


def header(response, name):
    """The value of a response header (the host gives names in lower case)."""
    for key, value in response.headers:
        if key == name:
            return value
    return None


def retry_after_ms(response):
    """`Retry-After: <seconds>` in milliseconds; the HTTP-date form is ignored."""
    value = header(response, "retry-after")
    if value is not None and value.strip().isdigit():
        return int(value.strip()) * 1000
    return None


class Handler(exports.Handler):
    def manifest(self) -> types.PluginManifest:
        return types.PluginManifest(
            name="{{name}}",
            version="0.1.0",
            description="Forwards Recoco project and tag events, signed, to one URL.",
            subscriptions=["projects.Project", "taggit.TaggedItem"],
            config_schema=json.dumps(CONFIG_SCHEMA),
            default_allowed_hosts=["config:/url"],
            tasks=[],
            coalesce=False,
            ordering_keys=[],
            # Tell operators who you are: "Name <mail@example.org>", a URL, an SPDX id.
            authors=[],
            homepage=None,
            license=None,
        )

    def handle_event(self, ctx: types.Context, event: types.Event) -> str:
        config = json.loads(ctx.config)
        payload = json.loads(event.payload)
        body = json.dumps(
            {
                "event": event.id,
                "topic": event.topic,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "object": payload.get("object"),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        request = types.HttpRequest(
            method="POST",
            url=config["url"],
            headers=[
                ("content-type", "application/json"),
                ("x-recoco-signature", sign(config["secret"].encode("utf-8"), body)),
            ],
            body=body,
            timeout_ms=None,
            sensitive_headers=[],
        )
        try:
            response = http.send(request)
        except Err as err:
            if isinstance(err.value, types.HttpError_NotAllowed):
                raise permanent(
                    f"{config['url']} is not allowed: add {err.value.value} to the connection's allowed_hosts"
                )
            raise retryable(f"request failed: {err.value}")

        status = response.status
        if 200 <= status < 300:
            return f"delivered {event.topic}: {status}"
        if status == 429 or status >= 500:
            raise retryable(f"target answered {status}", retry_after_ms(response))
        raise permanent(f"target answered {status}")

    def run_task(self, ctx: types.Context, name: str, payload: str) -> str:
        raise permanent(f"no task named {name}")
