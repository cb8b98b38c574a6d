// The {{name}} connector: forwards every event it receives, as signed JSON, to one URL.
//
// `npm run build` bundles this module (and @noble/hashes) into one file and
// componentize-js turns it into a WebAssembly component of the `connector`
// world (wit/connector.wit). The host calls the functions of `handler` below;
// everything the connector does outside its own memory goes through the host's
// imports (`send` of `recoco:connector/http` here).

import { send } from "recoco:connector/http@0.2.0";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const CONFIG_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  required: ["url", "secret"],
  properties: {
    url: { type: "string", format: "uri", description: "Where every event is POSTed." },
    secret: {
      type: "string",
      writeOnly: true,
      minLength: 16,
      description: "Key of the HMAC-SHA256 signature sent in x-recoco-signature.",
    },
  },
  additionalProperties: false,
};

// A thrown plain object becomes the `err` of the WIT `result` (an `Error`
// instance would trap instead).
function permanent(message) {
  return { retryable: false, message, retryAfterMs: undefined };
}

function retryable(message, retryAfterMs) {
  return { retryable: true, message, retryAfterMs };
}

// `Retry-After: <seconds>` in milliseconds (as a BigInt: the WIT type is u64);
// the HTTP-date form is ignored. The host gives header names in lower case.
function retryAfterMs(response) {
  const found = response.headers.find(([name]) => name === "retry-after");
  if (found && /^\s*\d+\s*$/.test(found[1])) {
    return BigInt(found[1].trim()) * 1000n;
  }
  return undefined;
}

const encoder = new TextEncoder();

export const handler = {
  manifest() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      description: "Forwards Recoco project and tag events, signed, to one URL.",
      subscriptions: ["projects.Project", "taggit.TaggedItem"],
      configSchema: JSON.stringify(CONFIG_SCHEMA),
      defaultAllowedHosts: ["config:/url"],
      tasks: [],
      coalesce: false,
      orderingKeys: [],
      // Tell operators who you are: "Name <mail@example.org>", a URL, an SPDX id.
      authors: [],
      homepage: undefined,
      license: undefined,
    };
  },

  handleEvent(ctx, event) {
    const config = JSON.parse(ctx.config);
    const payload = JSON.parse(event.payload);
    const body = encoder.encode(
      JSON.stringify({
        event: event.id,
        topic: event.topic,
        object_type: event.objectType,
        object_id: event.objectId ?? null,
        object: payload.object ?? null,
      }),
    );
    const signature = bytesToHex(hmac(sha256, encoder.encode(config.secret), body));

    let response;
    try {
      response = send({
        method: "POST",
        url: config.url,
        headers: [
          ["content-type", "application/json"],
          ["x-recoco-signature", `sha256=${signature}`],
        ],
        body,
        timeoutMs: undefined,
        sensitiveHeaders: [],
      });
    } catch (e) {
      // An `err` of an imported function arrives as an exception whose
      // `payload` is the WIT value: here an `http-error` variant `{ tag, val }`.
      const error = e.payload ?? e;
      if (error.tag === "not-allowed") {
        throw permanent(`${config.url} is not allowed: add ${error.val} to the connection's allowed_hosts`);
      }
      throw retryable(`request failed: ${error.tag}${error.val === undefined ? "" : ` (${error.val})`}`);
    }

    const status = response.status;
    if (status >= 200 && status < 300) {
      return `delivered ${event.topic}: ${status}`;
    }
    if (status === 429 || status >= 500) {
      throw retryable(`target answered ${status}`, retryAfterMs(response));
    }
    throw permanent(`target answered ${status}`);
  },

  runTask(ctx, name, payload) {
    throw permanent(`no task named ${name}`);
  },
};
