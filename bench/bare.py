"""The comparison endpoint of bench/webhook.py: Flask that only parses the JSON, on waitress.

Served with the same waitress settings as `adherence serve` (adherence.cli.core.build_server).

Usage: python bench/bare.py --port 8081 [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import logging

from flask import Flask, jsonify, request
from waitress import create_server

app = Flask(__name__)


@app.post("/webhooks/rta")
def rta():
    data = json.loads(request.get_data())
    return jsonify({"ok": True, "accepted": len(data.get("records") or ()), "duplicates": 0, "rejected": 0})


def main() -> None:
    # as `adherence serve` does (adherence.web.server.make_server): no log line per request that waits for a thread
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--max-body", type=int, default=5 * 1024 * 1024)
    ap.add_argument("--guarded", action="store_true", help="serve with adherence's own waitress server (its limits)")
    args = ap.parse_args()
    if args.guarded:
        from adherence.web.server import make_server

        server = make_server(app, host=args.host, port=args.port, threads=args.threads, max_body_bytes=args.max_body)
        print(f"bare (guarded): listening on http://{args.host}:{server.effective_port}", flush=True)
        server.run()
        return
    server = create_server(  # the settings of adherence.cli.core.build_server
        app, host=args.host, port=args.port, threads=args.threads, ident="adherence",
        max_request_body_size=args.max_body + 1024, channel_timeout=60, connection_limit=1000,
        clear_untrusted_proxy_headers=True,
    )
    print(f"bare: listening on http://{args.host}:{server.effective_port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
