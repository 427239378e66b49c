"""A webhook receiver for tests/api/webhooks.rs: verifies every delivery with the
PyPI `standardwebhooks` package (the Standard Webhooks reference library, not our
code) and records it. Prints `listening <port>` once it serves.

Control, per receiving path (e.g. `/hooks/a`):
  POST /_config {"path": ..., "secrets": ["whsec_..."], "mode": ...}
    mode: "ok" (200), "fail:N" (the first N requests answer 500, then 200),
          "always:500", "slow:S" (every request waits S seconds, then 200),
          "slow_first:S" (the first request waits S seconds, then 200).
  GET /_log?path=... -> every request received on that path, in order of arrival:
    {"webhook_id", "timestamp", "verified", "verified_by" (index of the secret that
     verified it, or null), "type", "body" (parsed), "user_agent", "answered"}.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

lock = threading.Lock()
configs = {}  # path -> {"secrets": [...], "mode": str, "seen": int}
logs = {}  # path -> [record]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body=b"", content_type="text/plain"):
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up waiting (a timeout test)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/_log":
            return self._answer(404, b"no such path")
        path = parse_qs(url.query).get("path", [""])[0]
        with lock:
            body = json.dumps(logs.get(path, [])).encode()
        self._answer(200, body, "application/json")

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        url = urlparse(self.path)
        if url.path == "/_config":
            conf = json.loads(raw)
            with lock:
                configs[conf["path"]] = {
                    "secrets": conf.get("secrets", []),
                    "mode": conf.get("mode", "ok"),
                    "seen": 0,
                }
            return self._answer(200, b"configured")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            conf = configs.setdefault(url.path, {"secrets": [], "mode": "ok", "seen": 0})
            conf["seen"] += 1
            seen, mode, secrets = conf["seen"], conf["mode"], list(conf["secrets"])
        verified_by = None
        for i, secret in enumerate(secrets):
            try:
                Webhook(secret).verify(raw, headers)
                verified_by = i
                break
            except WebhookVerificationError:
                continue
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = {
            "webhook_id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "verified": verified_by is not None,
            "verified_by": verified_by,
            "type": body.get("type") if isinstance(body, dict) else None,
            "body": body,
            "user_agent": headers.get("user-agent"),
            "answered": None,
        }
        with lock:
            logs.setdefault(url.path, []).append(record)
        status = 200
        if mode.startswith("fail:") and seen <= int(mode.split(":")[1]):
            status = 500
        elif mode == "always:500":
            status = 500
        elif mode.startswith("slow:"):
            time.sleep(float(mode.split(":")[1]))
        elif mode.startswith("slow_first:") and seen == 1:
            time.sleep(float(mode.split(":")[1]))
        with lock:
            record["answered"] = status
        self._answer(status, b"received" if status == 200 else b"receiver says no")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
