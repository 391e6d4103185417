"""Drives sessions through the gateway with the official anthropic SDK so the dashboard has live figures: rounds of
concurrent sessions, each sent two messages (waiting for the agent to go idle after each), plus one request for a
session that does not exist per round (a 404 on the gateway's panel).

    python traffic.py --base-url URL --api-key KEY --agent ID --environment ID [--rounds 4] [--sessions 3]
                      [--pause 20]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time

import anthropic

MESSAGES = ["Check that the network works.", "Now write some notes and read them back."]


def run_session(client: anthropic.Anthropic, agent: str, environment: str, title: str, timeout: float) -> str:
    """Creates a session, sends MESSAGES one after the other and returns how each turn ended."""
    session = client.beta.sessions.create(agent=agent, environment_id=environment, title=title)
    deadline = time.monotonic() + timeout
    reasons = []
    with client.beta.sessions.events.stream(session.id) as stream:
        events = iter(stream)
        for message in MESSAGES:
            client.beta.sessions.events.send(
                session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": message}]}]
            )
            for event in events:
                if event.type == "session.status_idle" and event.stop_reason.type != "requires_action":
                    reasons.append(event.stop_reason.type)
                    break
                if event.type == "session.status_terminated":
                    raise RuntimeError(f"{session.id} terminated")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{session.id}: no idle within {timeout:.0f} s")
    return f"{session.id}: {', '.join(reasons)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=3, help="concurrent sessions per round")
    parser.add_argument("--pause", type=float, default=20, help="seconds between rounds")
    parser.add_argument("--timeout", type=float, default=240, help="seconds one session may take")
    args = parser.parse_args()

    client = anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key, timeout=60.0, max_retries=0)
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.sessions) as pool:
        for round_ in range(1, args.rounds + 1):
            started = time.monotonic()
            futures = [
                pool.submit(run_session, client, args.agent, args.environment, f"dashboard {round_}.{i}", args.timeout)
                for i in range(1, args.sessions + 1)
            ]
            try:
                client.beta.sessions.retrieve("sesn_does_not_exist")
            except anthropic.NotFoundError:
                pass
            for future in futures:
                try:
                    print(f"round {round_}: {future.result()}", flush=True)
                except Exception as err:  # one failed session must not stop the others
                    failures += 1
                    print(f"round {round_}: failed: {err}", file=sys.stderr, flush=True)
            print(f"round {round_} took {time.monotonic() - started:.1f} s", flush=True)
            if round_ < args.rounds:
                time.sleep(args.pause)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
