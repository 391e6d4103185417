"""The demo's client: the official anthropic SDK pointed at Corral's gateway. Creates a session of the demo agent,
sends one message and prints the events as they stream in, until the agent is idle.

    python demo.py --base-url URL --api-key KEY --agent ID --environment ID [--message TEXT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import anthropic

COLOR = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def paint(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def label(name: str, code: str) -> str:
    return paint(code, f"{name:>9}") + "  "


def indent(text: str) -> str:
    return text.replace("\n", "\n" + " " * 11)


def text_of(content) -> str:
    parts = []
    for block in content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind is not None:
            parts.append(f"[{kind}]")
    return "".join(parts).strip()


def show(event, started: float) -> None:
    t = event.type
    if t == "user.message":
        print(label("you", "1;36") + indent(text_of(event.content)))
    elif t == "agent.thinking":
        thought = getattr(event, "thinking", None) or "…"
        print(label("thinking", "2") + paint("2;3", indent(str(thought))))
    elif t == "agent.message":
        print(label("agent", "1;32") + indent(text_of(event.content)))
    elif t in ("agent.tool_use", "agent.custom_tool_use", "agent.mcp_tool_use"):
        args = json.dumps(event.input, ensure_ascii=False)
        print(label("tool", "1;33") + paint("33", event.name) + " " + indent(args))
    elif t in ("agent.tool_result", "agent.mcp_tool_result"):
        output = text_of(event.content) or "(no output)"
        mark = paint("31", "error ") if getattr(event, "is_error", False) else ""
        print(label("result", "33") + mark + indent(output))
    elif t == "session.status_running":
        print(label("session", "35") + paint("2", "running"))
    elif t == "session.status_idle":
        reason = event.stop_reason.type
        print(label("session", "35") + paint("2", f"idle ({reason}) after {time.monotonic() - started:.1f} s"))
    elif t == "session.error":
        error = event.error
        print(label("error", "1;31") + indent(f"{getattr(error, 'type', 'error')}: {getattr(error, 'message', error)}"))
    elif t == "span.model_request_end":
        usage = getattr(event, "model_usage", None)
        if usage is not None:
            print(label("model", "2") + paint("2", f"{usage.input_tokens} tokens in, {usage.output_tokens} out"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--message", default="Say hello and check the sandbox works")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    client = anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key, timeout=60.0)
    session = client.beta.sessions.create(agent=args.agent, environment_id=args.environment, title="Corral demo")
    print(
        paint("1", f"session {session.id}")
        + paint("2", f"  agent {session.agent.name or session.agent.id} v{session.agent.version}"
                     f" ({session.agent.model.id}), environment {session.environment_id}")
    )
    started = time.monotonic()
    deadline = started + args.timeout
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": args.message}]}]
        )
        for event in stream:
            show(event, started)
            sys.stdout.flush()
            if event.type == "session.status_idle" and event.stop_reason.type != "requires_action":
                break
            if event.type == "session.status_terminated":
                return 1
            if time.monotonic() > deadline:
                print(f"no idle within {args.timeout:.0f} s", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
