"""A local Slack stand-in that records every call: for tests, the bench and the lab demo.

It answers the Web API (``/api/<method>``) with Slack's documented response
shapes and assigns increasing ``ts`` values, and accepts incoming-webhook
POSTs (``/services/...``) with Slack's plain ``ok``. It can be told to fail
(down, HTTP 500, 429 with ``Retry-After``) to exercise bascule's delivery budget.

In-process::

    with CaptureServer() as slack:
        slack.api_url        # http://127.0.0.1:PORT/api/      -> connection extra base_url
        slack.services_url   # http://127.0.0.1:PORT/services  -> webhook connection host
        slack.records        # list of dicts, one per request

CLI::

    python -m bascule_lab.slack_capture --port 8099 --out slack.jsonl
    python -m bascule_lab.slack_capture --render slack.jsonl

The recorded ``Authorization`` header is reduced to its scheme so the capture
file never holds a token.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

_TS_BASE = 1_700_000_000


class FailureMode(enum.StrEnum):
    NONE = "none"
    DOWN = "down"  # listener closed: connection refused
    HTTP_500 = "http_500"
    RATE_LIMITED = "rate_limited"  # 429 with Retry-After
    HANG = "hang"  # accept, then answer only after ``hang_s``


def channel_id(name: str) -> str:
    """Slack answers with channel ids, not names; derive a stable fake one."""
    if name and name[0] in "CDG" and name[1:].isalnum() and name.isupper():
        return name
    return "C" + hashlib.sha1(name.lstrip("#").encode()).hexdigest()[:10].upper()


class _Handler(BaseHTTPRequestHandler):
    server: _CaptureHTTPServer
    # HTTP/1.0: one request per connection, so DOWN really refuses the next request.

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet by default: test output should show bascule's logs, not ours.
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        owner = self.server.owner
        failure = owner.take_failure()
        record = owner.record(self.command, self.path, self.headers, raw, failure)
        self._record = record
        self._answer(owner, record, failure)

    def _answer(self, owner: CaptureServer, record: dict[str, Any], failure: FailureMode) -> None:
        if owner.latency_s:
            time.sleep(owner.latency_s)
        if failure is FailureMode.HANG:
            time.sleep(owner.hang_s)
        if failure is FailureMode.HTTP_500:
            self._reply(500, b"<html>internal error</html>", "text/html")
            return
        if failure is FailureMode.RATE_LIMITED:
            body = json.dumps({"ok": False, "error": "ratelimited"}).encode()
            self._reply(429, body, "application/json", {"Retry-After": str(owner.retry_after_s)})
            return
        if record["kind"] == "webhook":
            self._reply(200, b"ok", "text/html")
            return
        if record["kind"] == "upload":
            self._reply(200, f"OK - {record['body']['size']}".encode(), "text/plain")
            return
        self._reply(200, json.dumps(owner.api_response(record)).encode(), "application/json")

    def _reply(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        # Persist before answering: once the client has its answer, the file must already hold it.
        self.server.owner.persist(self._record)
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{ctype}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The client gave up (its timeout fired); nothing to answer to.
            pass


class _CaptureHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: CaptureServer


class CaptureServer:
    """Threaded HTTP server recording Slack Web API and webhook calls."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        out: str | Path | None = None,
        retry_after_s: int = 1,
        hang_s: float = 10.0,
        latency_s: float = 0.0,
    ) -> None:
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, got {latency_s}")
        self.host = host
        # Real Slack takes 0.1-0.3 s to answer chat.postMessage; benches set it to see what that costs.
        self.latency_s = latency_s
        self.port = port
        self.out = Path(out) if out else None
        self.retry_after_s = retry_after_s
        self.hang_s = hang_s
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._ts_counter = 0
        self._mode = FailureMode.NONE
        self._fail_remaining: int | None = None
        self._then = FailureMode.NONE
        self._httpd: _CaptureHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------

    def start(self) -> CaptureServer:
        httpd = _CaptureHTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="slack-capture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    @property
    def services_url(self) -> str:
        return f"{self.base_url}/services"

    # --- failure modes ----------------------------------------------------

    def set_mode(self, mode: FailureMode, *, times: int | None = None, then: FailureMode | None = None) -> None:
        """Fail the next ``times`` requests (all of them when None) in ``mode``, then answer in ``then``.

        ``then`` (default: normally) lets one outage change its face, as Slack's do: HTTP 500 for a few
        calls, then timeouts for the rest of the night (``set_mode(HTTP_500, times=3, then=HANG)``).
        ``DOWN`` closes the listener (connection refused); leaving it re-opens the same port.
        """
        if then is FailureMode.DOWN or (then not in (None, FailureMode.NONE) and times is None):
            raise ValueError("then: needs times, and cannot be down (the listener is closed per mode, not per call)")
        with self._lock:
            previous = self._mode
            self._mode = mode
            self._fail_remaining = times
            self._then = then or FailureMode.NONE
        if mode is FailureMode.DOWN and self._httpd is not None:
            self.stop()
        elif previous is FailureMode.DOWN and mode is not FailureMode.DOWN and self._httpd is None:
            self.start()

    def take_failure(self) -> FailureMode:
        with self._lock:
            mode = self._mode
            if mode is FailureMode.NONE:
                return mode
            if self._fail_remaining is not None:
                self._fail_remaining -= 1
                if self._fail_remaining <= 0:
                    self._mode = self._then
                    self._fail_remaining = None
                    self._then = FailureMode.NONE
            return mode

    # --- recording --------------------------------------------------------

    def record(
        self, method: str, path: str, headers: Any, raw: bytes, failure: FailureMode
    ) -> dict[str, Any]:
        text = raw.decode("utf-8", errors="replace")
        ctype = headers.get("Content-Type", "")
        body: Any
        try:
            body = json.loads(text) if "json" in ctype or text.startswith("{") else dict(parse_qsl(text))
        except ValueError:
            body = {}
        path_only = path.split("?", 1)[0]
        if path_only.startswith("/api/"):
            kind, api_method = "web_api", path_only[len("/api/") :]
        elif path_only.startswith("/services"):
            kind, api_method = "webhook", None
        elif path_only.startswith("/upload/"):
            # The second step of files_upload_v2: the file's bytes, to the URL getUploadURLExternal gave.
            kind, api_method = "upload", None
            body, text = {"file_id": path_only.rsplit("/", 1)[-1], "size": len(raw),
                          "sha256": hashlib.sha256(raw).hexdigest(), "png": raw.startswith(b"\x89PNG")}, ""
        else:
            kind, api_method = "other", None
        auth = headers.get("Authorization", "")
        with self._lock:
            self._seq += 1
            rec: dict[str, Any] = {
                "seq": self._seq,
                "at": time.time(),
                "http_method": method,
                "path": "/services/…" if kind == "webhook" else path_only,
                "kind": kind,
                "api_method": api_method,
                "auth": auth.split(" ", 1)[0] if auth else "",
                "failure": failure.value,
                "body": body,
                "raw_body": text,
            }
            self.records.append(rec)
        return rec

    def persist(self, rec: dict[str, Any]) -> None:
        """Append to ``out`` once the answer (and so the assigned ``ts``) is known."""
        if self.out is None:
            return
        with self._lock, self.out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")

    def _next_ts(self) -> str:
        with self._lock:
            self._ts_counter += 1
            micros = self._ts_counter * 100
        return f"{_TS_BASE + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def api_response(self, rec: dict[str, Any]) -> dict[str, Any]:
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        method = rec["api_method"]
        if not rec["auth"] and method != "api.test":
            return {"ok": False, "error": "not_authed"}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://bascule-lab.slack.com/",
                "team": "bascule-lab",
                "user": "bascule",
                "team_id": "T0CAPTURE",
                "user_id": "U0CAPTURE",
                "bot_id": "B0CAPTURE",
            }
        if method in ("chat.postMessage", "chat.update"):
            channel = body.get("channel")
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            cid = channel_id(str(channel))
            ts = self._next_ts() if method == "chat.postMessage" else str(body.get("ts", ""))
            message: dict[str, Any] = {
                "type": "message",
                "user": "U0CAPTURE",
                "bot_id": "B0CAPTURE",
                "text": body.get("text", ""),
                "ts": ts,
            }
            if body.get("blocks"):
                message["blocks"] = body["blocks"]
            if body.get("thread_ts"):
                message["thread_ts"] = body["thread_ts"]
            rec["response_ts"] = ts
            rec["response_channel"] = cid
            response = {"ok": True, "channel": cid, "ts": ts, "message": message}
            if method == "chat.update":
                response["text"] = body.get("text", "")
            return response
        if method == "api.test":
            return {"ok": True, "args": body}
        if method == "files.getUploadURLExternal":
            with self._lock:
                self._seq_files = getattr(self, "_seq_files", 0) + 1
                file_id = f"F0CAPTURE{self._seq_files:04d}"
            rec["file_id"] = file_id
            return {"ok": True, "file_id": file_id, "upload_url": f"{self.base_url}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = body.get("files")
            if isinstance(files, str):
                files = json.loads(files)
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")} for f in files or []]}
        return {"ok": False, "error": "unknown_method"}

    def uploads(self) -> list[dict[str, Any]]:
        """Files uploaded (bytes received) and the threads they were shared into."""
        done = {}
        for rec in self.records:
            if rec.get("api_method") == "files.completeUploadExternal" and isinstance(rec.get("body"), dict):
                body = rec["body"]
                files = body.get("files")
                files = json.loads(files) if isinstance(files, str) else files or []
                for f in files:
                    done[f.get("id")] = {"channel": body.get("channel_id"), "thread_ts": body.get("thread_ts"),
                                         "title": f.get("title")}
        return [{**rec["body"], **done.get(rec["body"]["file_id"], {})} for rec in self.records
                if rec.get("kind") == "upload"]


# --- rendering ---------------------------------------------------------------


def _text_obj(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def flatten_blocks(blocks: Iterable[dict[str, Any]]) -> list[str]:
    """Readable lines from Block Kit, roughly what a person sees in the client."""
    lines: list[str] = []
    for block in blocks or ():
        btype = block.get("type")
        if btype == "header":
            lines.append(f"== {_text_obj(block.get('text'))} ==")
        elif btype == "section":
            if block.get("text"):
                lines.append(_text_obj(block["text"]))
            for f in block.get("fields", ()):
                lines.append(_text_obj(f).replace("\n", ": ", 1))
        elif btype == "context":
            lines.append(" · ".join(_text_obj(e) for e in block.get("elements", ())))
        elif btype == "actions":
            for e in block.get("elements", ()):
                lines.append(f"[{_text_obj(e.get('text'))}] {e.get('url', '')}".rstrip())
        elif btype == "divider":
            lines.append("----")
    return [ln for ln in "\n".join(lines).split("\n") if ln.strip()]


def _message_lines(body: dict[str, Any]) -> list[str]:
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            blocks = None
    return flatten_blocks(blocks) if blocks else [str(body.get("text", ""))]


def render_thread_text(records: Iterable[dict[str, Any]]) -> str:
    """Render captured posts as threads: each parent, then its replies indented beneath it.

    Failed (non-answered) requests are skipped; webhook posts are listed as flat messages.
    """
    parents: list[dict[str, Any]] = []
    replies: dict[tuple[str, str], list[dict[str, Any]]] = {}
    webhook: list[dict[str, Any]] = []
    for rec in records:
        if rec.get("failure", "none") != "none":
            continue
        body = rec.get("body") if isinstance(rec.get("body"), dict) else {}
        if rec.get("kind") == "webhook":
            webhook.append(rec)
        elif rec.get("api_method") == "chat.postMessage":
            cid = rec.get("response_channel") or channel_id(str(body.get("channel", "")))
            if body.get("thread_ts"):
                replies.setdefault((cid, str(body["thread_ts"])), []).append(rec)
            else:
                parents.append(rec)
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for rec in parents:
        body = rec["body"]
        key = (rec.get("response_channel", ""), rec.get("response_ts", ""))
        seen.add(key)
        lines = _message_lines(body)
        out.append(f"{body.get('channel')} [{key[1]}] {lines[0]}")
        out.extend(f"    {ln}" for ln in lines[1:])
        for reply in replies.get(key, []):
            rlines = _message_lines(reply["body"])
            out.append(f"    ↳ [{reply.get('response_ts', '')}] {rlines[0]}")
            out.extend(f"        {ln}" for ln in rlines[1:])
    for key, orphans in replies.items():
        if key in seen:
            continue
        out.append(f"(thread {key[1]} in {key[0]}, parent not captured)")
        for reply in orphans:
            rlines = _message_lines(reply["body"])
            out.append(f"    ↳ [{reply.get('response_ts', '')}] {rlines[0]}")
            out.extend(f"        {ln}" for ln in rlines[1:])
    for rec in webhook:
        lines = _message_lines(rec["body"] if isinstance(rec["body"], dict) else {})
        out.append(f"(webhook) {lines[0]}")
        out.extend(f"    {ln}" for ln in lines[1:])
    return "\n".join(out)


def route_slack(connections_file: str | Path, api_url: str, *, token: str) -> None:
    """Point the lab's ``bascule_slack`` connection at a capture server: what the night posts is recorded."""
    path = Path(connections_file)
    conns = json.loads(path.read_text())
    conns["bascule_slack"] = {"conn_type": "slack", "password": token, "extra": {"base_url": api_url}}
    path.write_text(json.dumps(conns, indent=2))


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bascule_lab.slack_capture", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--out", help="append every request as one JSON line")
    parser.add_argument("--mode", choices=[m.value for m in FailureMode], default="none")
    parser.add_argument("--retry-after", type=int, default=1, help="seconds sent with 429 answers")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before every answer")
    parser.add_argument("--render", metavar="JSONL", help="print a capture file as threads and exit")
    args = parser.parse_args(argv)
    if args.render:
        print(render_thread_text(read_jsonl(args.render)))
        return 0
    server = CaptureServer(host=args.host, port=args.port, out=args.out, retry_after_s=args.retry_after,
                           latency_s=args.latency)
    server.start()
    mode = FailureMode(args.mode)
    if mode is not FailureMode.NONE:
        server.set_mode(mode)
    print(
        f"slack capture on {server.base_url}  (api base_url {server.api_url}, webhook host {server.services_url})"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
