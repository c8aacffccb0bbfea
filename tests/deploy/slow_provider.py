#!/usr/bin/env python3
"""A slow OpenAI-compatible chat endpoint, so a worker reloaded under traffic has handlers in
flight. Usage: slow_provider.py PORT_FILE DELAY_S — binds a free loopback port, writes it to
PORT_FILE, answers every POST .../chat/completions with "ok" after DELAY_S seconds."""
import http.server
import json
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        time.sleep(float(sys.argv[2]))
        body = json.dumps({
            "model": request.get("model", "slow"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
