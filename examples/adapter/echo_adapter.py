#!/usr/bin/env python3
"""echo_adapter.py - a tiny, complete dyno custom adapter (protocol version 1).

It is a toy "model" that shows every part of the protocol described in
docs/adapter-protocol.md, using only the Python 3 standard library:

* On start it writes {"type":"hello","protocol":1} to stdout.
* On {"type":"load",...} it reads the "weights": a text file of words
  (weights_path, e.g. examples/adapter/weights.txt; a built-in word list when
  it is null), then answers {"type":"loaded","info":{...}}.
* On {"type":"generate",...} it streams up to max_tokens words, one "token"
  event each, chosen deterministically from the prompt text and the seed
  (temperature is ignored), then a "done" event with usage and
  finish_reason ("stop" when it ended on its own, "length" at max_tokens).
* On {"type":"shutdown"} or end of stdin it exits with status 0.
* "cancel" and message types it does not know are ignored (and logged).

Parameters (load "params", overridable per request in generate "params"):
  token_delay_ms   delay before each token, default 5
  load_delay_ms    extra delay while loading, default 0

Every stdout line is flushed at once: dyno timestamps lines as they arrive,
so buffered output would distort the measured latencies. Logging goes to
stderr only; stdout carries protocol messages and nothing else.

Run it with dyno as a custom adapter, e.g. command
["python3", "examples/adapter/echo_adapter.py"] and weights_path
"examples/adapter/weights.txt".
"""

import hashlib
import json
import sys
import time

PROTOCOL = 1
DEFAULT_WORDS = "the a model token stream of words runs fast and slow".split()
DEFAULT_MAX_TOKENS = 16


def send(message):
    """Writes one protocol message as one line and flushes it."""
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def log(text):
    print("echo_adapter: " + text, file=sys.stderr, flush=True)


def number(params, key, default):
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"params.{key} must be a non-negative number, got {value!r}")
    return value


def pick(seed, prompt, step, modulo):
    """A deterministic number in [0, modulo) from the prompt, seed and step."""
    digest = hashlib.sha256(f"{seed}\0{prompt}\0{step}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % modulo


class Model:
    def __init__(self):
        self.words = None
        self.params = {}

    def load(self, message):
        params = message.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError("load params must be an object")
        delay = number(params, "load_delay_ms", 0)
        path = message.get("weights_path")
        if path is None:
            words = list(DEFAULT_WORDS)
        else:
            with open(path, encoding="utf-8") as weights:
                words = weights.read().split()
            if not words:
                raise ValueError(f"weights file {path} has no words")
        time.sleep(delay / 1000.0)
        self.words = words
        self.params = params
        log(f"loaded {len(words)} words from {path or 'the built-in list'}")
        return {"runtime": "echo_adapter", "version": "1.0", "vocabulary": len(words)}

    def generate(self, request_id, message):
        messages = message.get("messages")
        if not isinstance(messages, list):
            raise ValueError("messages must be a list")
        params = dict(self.params)
        params.update(message.get("params") or {})
        max_tokens = int(number(params, "max_tokens", DEFAULT_MAX_TOKENS))
        delay = number(params, "token_delay_ms", 5) / 1000.0
        seed = params.get("seed", 0)
        prompt = "\n".join(str(m.get("content", "")) for m in messages)
        prompt_tokens = len(prompt.split())

        # The "natural" length of the answer; max_tokens may cut it short.
        natural = 4 + pick(seed, prompt, "length", 20)
        count = min(natural, max_tokens)
        for step in range(count):
            time.sleep(delay)
            word = self.words[pick(seed, prompt, step, len(self.words))]
            send({"type": "token", "id": request_id, "text": word if step == 0 else " " + word})
        send({
            "type": "done",
            "id": request_id,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": count},
            "finish_reason": "stop" if count == natural else "length",
        })


def main():
    send({"type": "hello", "protocol": PROTOCOL})
    model = Model()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError as err:
            send({"type": "error", "message": f"not JSON: {err}"})
            continue
        kind = message.get("type") if isinstance(message, dict) else None
        request_id = message.get("id") if isinstance(message, dict) else None
        try:
            if kind == "load":
                if message.get("protocol") != PROTOCOL:
                    raise ValueError(f"unsupported protocol {message.get('protocol')!r}")
                send({"type": "loaded", "info": model.load(message)})
            elif kind == "generate":
                if not isinstance(request_id, str):
                    raise ValueError("generate needs a string id")
                if model.words is None:
                    raise ValueError("generate before load")
                model.generate(request_id, message)
            elif kind == "shutdown":
                log("shutting down")
                return 0
            else:
                # "cancel" (generation here is synchronous, so by the time
                # we read it the request is over) and unknown types.
                log(f"ignoring message of type {kind!r}")
        except Exception as err:  # report, keep serving
            error = {"type": "error", "message": f"{type(err).__name__}: {err}"}
            if kind == "generate" and isinstance(request_id, str):
                error["id"] = request_id
            send(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
