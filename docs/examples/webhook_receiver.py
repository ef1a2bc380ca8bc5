"""A downstream system's webhook receiver: verifies each delivery's Standard Webhooks signature
and handles each event once, however often it is delivered (keyed on ``webhook-id``).

    KEFU_WEBHOOK_SECRET=whsec_... python docs/examples/webhook_receiver.py --port 9000

Register it with Kefu (the answer's ``secret`` is the one to set above; shown once):

    curl -X POST localhost:8005/v1/webhooks -H "Authorization: Bearer $KEY" \\
      -H 'content-type: application/json' \\
      -d '{"url": "http://127.0.0.1:9000/kefu", "events": ["improvement.*"]}'

It answers 2xx only once the event is handled (here: printed), so anything else means Kefu
tries again later. A real receiver keeps the ids it handled in its own database, in the same
transaction as the effect. Needs only the ``standardwebhooks`` package.
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock
from typing import ClassVar

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver(BaseHTTPRequestHandler):
    webhook: ClassVar[Webhook]
    handled: ClassVar[set[str]] = set()
    lock: ClassVar[Lock] = Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            event = self.webhook.verify(body, dict(self.headers.items()))
        except WebhookVerificationError as exc:
            self._answer(401, f"bad signature: {exc}")
            return
        message_id = self.headers["webhook-id"]
        with self.lock:  # one handling per id, even when two deliveries race
            duplicate = message_id in self.handled
            if not duplicate:
                data = event["data"]
                line = {
                    "webhook_id": message_id,
                    "type": event["type"],
                    "subject": event.get("subject"),
                    "customer": (data.get("customer") or {}).get("name"),
                    "summary": data.get("summary") or data.get("theme"),
                }
                print(json.dumps(line, ensure_ascii=False), flush=True)
                self.handled.add(message_id)
            else:
                print(json.dumps({"webhook_id": message_id, "duplicate": True}), flush=True)
        self._answer(204, "")

    def _answer(self, status: int, text: str) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(text.encode())))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, format: str, *args: object) -> None:  # quiet: stdout is the events
        pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    Receiver.webhook = Webhook(os.environ["KEFU_WEBHOOK_SECRET"])
    server = ThreadingHTTPServer((args.host, args.port), Receiver)
    print(f"listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
