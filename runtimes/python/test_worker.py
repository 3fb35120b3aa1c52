"""Tests of the Python worker, run as a real process on a real unix socket handed over as fd 3.

    python3 -m unittest discover -s runtimes/python -v
"""

import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")
LAUNCHER = os.path.join(HERE, "..", "testing", "launch_with_socket.py")
PYTHON = sys.executable
DEADLINE = 10.0  # seconds to wait for any observable event before failing

# One handler file serves most cases: `handler` dispatches on the event path, so one worker covers every return
# shape. Other symbols are picked with FN_HANDLER_NAME.
HANDLERS = textwrap.dedent(
    '''
    import asyncio, time

    CASES = {
        "dict": lambda e: {"hello": "wörld", "method": e.get("method")},
        "envelope": lambda e: {"status": 201, "headers": {"X-Multi": ["a", 2], "X-Num": 5, "X-None": None},
                               "body": "made"},
        "status_code": lambda e: {"statusCode": 202, "body": {"ok": True}},
        "own_type": lambda e: {"status": 200, "headers": {"content-type": "application/vnd.api+json"}, "body": [1]},
        "bytes": lambda e: {"status": 200, "headers": {"Content-Type": "image/png"}, "body": b"\\x89PNG\\x00"},
        "b64_alias": lambda e: {"statusCode": 200, "isBase64Encoded": True, "body": "AAE="},
        "b64_pair": lambda e: {"status": 200, "is_base64": True, "body_base64": "AAE="},
        "none_body": lambda e: {"status": 204, "body": None},
        "int_body": lambda e: {"status": 200, "body": 42},
        "no_headers": lambda e: {"status": 200, "body": "x"},
        "tuple1": lambda e: ("just body",),
        "tuple2": lambda e: ({"a": 1}, 404),
        "tuple3": lambda e: ("t", 418, {"X-T": "1"}),
        "tuple_bytes": lambda e: (b"\\x00\\x01", 200),
        "list": lambda e: [1, 2],
        "str": lambda e: "nope",
        "none": lambda e: None,
        "number": lambda e: 7,
        "status_bool": lambda e: {"status": True, "body": ""},
        "status_600": lambda e: {"status": 600, "body": ""},
        "status_str": lambda e: {"status": "200", "body": ""},
        "nan": lambda e: {"x": float("nan")},
        "unserialisable": lambda e: {"x": object()},
        "echo_id": lambda e: {"id": e["id"]},
        "loop": lambda e: {"running": asyncio.get_event_loop().is_running()},
    }

    def boom(e):
        raise RuntimeError("kaboom")

    def sleep(e):
        seconds = float(e["query"]["s"])
        time.sleep(seconds)
        return {"slept": seconds}

    def printer(e):
        print("hello from handler")
        return {"printed": True}

    async def async_sleep(e):
        seconds = float(e["query"]["s"])
        await asyncio.sleep(seconds)
        return {"slept": seconds, "id": e["id"]}

    async def async_print(e):
        print("begin", e["id"])
        await asyncio.sleep(float(e["query"]["s"]))
        print("end", e["id"])
        return {"printed": True}

    def handler(event):
        name = event["path"].strip("/")
        if name == "boom":
            return boom(event)
        if name == "sleep":
            return sleep(event)
        if name == "print":
            return printer(event)
        if name == "async_sleep":
            return async_sleep(event)  # a sync handler returning a coroutine: awaited like an async handler
        if name == "async_print":
            return async_print(event)
        return CASES[name](event)

    async def async_handler(event):
        await asyncio.sleep(0.01)
        return {"async": True, "path": event["path"]}

    async def async_boom(event):
        await asyncio.sleep(0)
        raise ValueError("async kaboom")

    def with_params(event, id, missing="default"):
        return {"id": id, "missing": missing}

    def with_kwargs(event, **kw):
        return {"kw": kw}

    not_callable = 3
    '''
)


def event(path="/dict", rid="req-1-2-000001", **extra):
    ev = {"id": rid, "method": "GET", "path": path, "query": {}, "params": {}, "headers": {}}
    ev.update(extra)
    return ev


def encode_frame(obj):
    data = json.dumps(obj).encode("utf-8")
    return struct.pack(">I", len(data)) + data


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock):
    """The next frame as an object, or None when the worker closed the connection."""
    head = recv_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    return json.loads(recv_exact(sock, n).decode("utf-8"))


def assert_closed(test, sock):
    try:
        test.assertEqual(sock.recv(1), b"")
    except ConnectionResetError:
        pass  # a close with unread request bytes may surface as a reset: still closed


class Worker:
    """A worker process serving one handler file, with stdout/stderr captured to files."""

    def __init__(self, source, name=None, mode="run", extra_env=None, files=None):
        self.dir = tempfile.mkdtemp(prefix="fastfn-pyworker-")
        self.fn_dir = os.path.join(self.dir, "fn")
        os.mkdir(self.fn_dir)
        self.handler_path = os.path.join(self.fn_dir, "handler.py")
        for name_, text in {**(files or {}), "handler.py": source}.items():
            with open(os.path.join(self.fn_dir, name_), "w", encoding="utf-8") as f:
                f.write(text)
        self.sock_path = os.path.join(self.dir, "worker.sock")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "FN_RUNTIME": "python",
            "FN_FUNCTION_NAME": "py/test",
            "FN_FUNCTION_DIR": self.fn_dir,
            "FN_HANDLER_PATH": self.handler_path,
            "FN_MODE": mode,
        }
        if name:
            env["FN_HANDLER_NAME"] = name
        env.update(extra_env or {})
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, LAUNCHER, self.sock_path, "--", PYTHON, WORKER],
                env=env, cwd=self.fn_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        self.wait_ready()

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(DEADLINE)
        try:
            sock.connect(self.sock_path)
        except OSError:
            sock.close()
            raise
        return sock

    def wait_ready(self):
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                with self.connect() as sock:
                    sock.sendall(encode_frame({"op": "ping"}))
                    if recv_frame(sock) is not None:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker never answered ping; stderr:\n{self.stderr()}")
            time.sleep(0.01)

    def request(self, obj):
        with self.connect() as sock:
            sock.sendall(encode_frame(obj))
            return recv_frame(sock)

    def call(self, path="/dict", **kw):
        return self.request({"event": event(path, **kw)})

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class WorkerCase(unittest.TestCase):
    """Shares one run-mode worker on HANDLERS across the tests of a class."""

    name = None
    mode = "run"
    extra_env = None

    @classmethod
    def setUpClass(cls):
        cls.worker = Worker(HANDLERS, name=cls.name, mode=cls.mode, extra_env=cls.extra_env)

    @classmethod
    def tearDownClass(cls):
        cls.worker.stop()


class TestReturnShapes(WorkerCase):
    def test_ping(self):
        reply = self.worker.request({"op": "ping"})
        self.assertEqual(reply, {"op": "pong", "pid": self.worker.proc.pid})  # the launcher execs: same pid

    def test_dict_is_json(self):
        reply = self.worker.call("/dict")
        self.assertEqual(reply["status"], 200)
        self.assertEqual(reply["headers"], {"Content-Type": "application/json"})
        self.assertEqual(reply["body"], '{"hello":"wörld","method":"GET"}')  # compact, UTF-8 kept

    def test_envelope_passthrough(self):
        reply = self.worker.call("/envelope")
        self.assertEqual(reply, {"status": 201, "headers": {"X-Multi": ["a", "2"], "X-Num": "5"}, "body": "made"})

    def test_status_code_alias_and_json_body(self):
        reply = self.worker.call("/status_code")
        self.assertEqual(reply, {"status": 202, "headers": {"Content-Type": "application/json"}, "body": '{"ok":true}'})

    def test_existing_content_type_kept(self):
        reply = self.worker.call("/own_type")
        self.assertEqual(reply["headers"], {"content-type": "application/vnd.api+json"})
        self.assertEqual(reply["body"], "[1]")

    def test_bytes_body_is_base64(self):
        reply = self.worker.call("/bytes")
        self.assertEqual(reply, {"status": 200, "headers": {"Content-Type": "image/png"}, "is_base64": True,
                                 "body_base64": "iVBORwA="})

    def test_base64_aliases(self):
        for path in ("/b64_alias", "/b64_pair"):
            reply = self.worker.call(path)
            self.assertTrue(reply["is_base64"], path)
            self.assertEqual(reply["body_base64"], "AAE=")
            self.assertNotIn("body", reply)

    def test_body_conversions(self):
        self.assertEqual(self.worker.call("/none_body"), {"status": 204, "headers": {}, "body": ""})
        self.assertEqual(self.worker.call("/int_body")["body"], "42")
        self.assertEqual(self.worker.call("/no_headers"), {"status": 200, "headers": {}, "body": "x"})

    def test_tuples(self):
        self.assertEqual(self.worker.call("/tuple1"), {"status": 200, "headers": {}, "body": "just body"})
        self.assertEqual(self.worker.call("/tuple2"),
                         {"status": 404, "headers": {"Content-Type": "application/json"}, "body": '{"a":1}'})
        self.assertEqual(self.worker.call("/tuple3"), {"status": 418, "headers": {"X-T": "1"}, "body": "t"})
        reply = self.worker.call("/tuple_bytes")
        self.assertEqual((reply["is_base64"], reply["body_base64"]), (True, "AAE="))

    def test_invalid_returns_are_handler_errors(self):
        for path in ("/list", "/str", "/none", "/number", "/status_bool", "/status_600", "/status_str", "/nan",
                     "/unserialisable"):
            reply = self.worker.call(path, rid="req-bad")
            self.assertEqual(reply["status"], 500, path)
            self.assertEqual(json.loads(reply["body"]), {"error": "internal error", "request_id": "req-bad"},
                             path)
        self.assertIn("[req-bad] InvalidResponse: handler response must be an object or tuple, got list",
                      self.worker.stderr())

    def test_handler_exception_run_mode(self):
        reply = self.worker.call("/boom", rid="req-boom-1")
        self.assertEqual(reply["status"], 500)
        self.assertEqual(reply["headers"], {"Content-Type": "application/json"})
        self.assertEqual(json.loads(reply["body"]), {"error": "internal error", "request_id": "req-boom-1"})
        err = self.worker.stderr()
        self.assertIn("[req-boom-1] Traceback", err)
        self.assertIn("RuntimeError: kaboom", err)
        self.assertNotIn("worker.py", err)  # the trace starts in the user's code

    def test_handler_print_reaches_stdout(self):
        self.assertEqual(self.worker.call("/print")["status"], 200)
        deadline = time.monotonic() + DEADLINE
        while "hello from handler" not in self.worker.stdout():
            self.assertLess(time.monotonic(), deadline, "handler output never flushed")
            time.sleep(0.01)

    def test_many_requests_on_one_connection(self):
        with self.worker.connect() as sock:
            for i in range(50):
                sock.sendall(encode_frame({"event": event("/dict", rid=f"req-{i}")}))
                self.assertEqual(recv_frame(sock)["status"], 200)
            sock.sendall(encode_frame({"op": "ping"}))
            self.assertEqual(recv_frame(sock)["op"], "pong")

    def test_pipelined_frames_in_one_write(self):
        with self.worker.connect() as sock:
            sock.sendall(encode_frame({"op": "ping"}) + encode_frame({"event": event("/tuple1")}))
            self.assertEqual(recv_frame(sock)["op"], "pong")
            self.assertEqual(recv_frame(sock)["body"], "just body")

    def test_frame_split_into_single_bytes(self):
        data = encode_frame({"event": event("/dict")}) * 2
        with self.worker.connect() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            for i in range(len(data)):
                sock.send(data[i:i + 1])
            self.assertEqual(recv_frame(sock)["status"], 200)
            self.assertEqual(recv_frame(sock)["status"], 200)

    def test_async_handler_does_not_hold_other_connections(self):
        slow, fast = self.worker.connect(), self.worker.connect()
        with slow, fast:
            started = time.monotonic()
            slow.sendall(encode_frame({"event": event("/async_sleep", rid="req-slow", query={"s": "0.5"})}))
            time.sleep(0.05)  # the slow request is in progress before the fast one arrives
            fast.sendall(encode_frame({"event": event("/dict")}))
            self.assertEqual(recv_frame(fast)["status"], 200)
            self.assertLess(time.monotonic() - started, 0.4, "fast request waited for the slow async one")
            self.assertEqual(json.loads(recv_frame(slow)["body"]), {"slept": 0.5, "id": "req-slow"})
            self.assertGreaterEqual(time.monotonic() - started, 0.5)

    def test_many_async_requests_run_concurrently(self):
        socks = [self.worker.connect() for _ in range(20)]
        try:
            started = time.monotonic()
            for i, sock in enumerate(socks):
                sock.sendall(encode_frame({"event": event("/async_sleep", rid=f"req-c{i}", query={"s": "0.3"})}))
            for i, sock in enumerate(socks):
                self.assertEqual(json.loads(recv_frame(sock)["body"]), {"slept": 0.3, "id": f"req-c{i}"})
            self.assertLess(time.monotonic() - started, 2.0, "20 × 0.3 s async sleeps ran one after the other")
        finally:
            for sock in socks:
                sock.close()

    def test_blocking_sync_handler_holds_its_process(self):
        # The model: a sync handler runs on the loop thread, so a blocking one delays every connection of this
        # process (concurrency for blocking code comes from the pool). Both still complete correctly.
        slow, fast = self.worker.connect(), self.worker.connect()
        with slow, fast:
            started = time.monotonic()
            slow.sendall(encode_frame({"event": event("/sleep", query={"s": "0.5"})}))
            time.sleep(0.05)
            fast.sendall(encode_frame({"event": event("/echo_id", rid="req-fast")}))
            self.assertEqual(json.loads(recv_frame(fast)["body"]), {"id": "req-fast"})
            self.assertGreaterEqual(time.monotonic() - started, 0.45, "the sync sleep did not hold the process")
            self.assertEqual(json.loads(recv_frame(slow)["body"]), {"slept": 0.5})

    def test_async_requests_on_one_connection_are_sequential(self):
        with self.worker.connect() as sock:
            started = time.monotonic()
            sock.sendall(b"".join(encode_frame({"event": event("/async_sleep", rid=f"req-s{i}", query={"s": "0.2"})})
                                  for i in range(2)))
            self.assertEqual(json.loads(recv_frame(sock)["body"])["id"], "req-s0")
            self.assertEqual(json.loads(recv_frame(sock)["body"])["id"], "req-s1")
            self.assertGreaterEqual(time.monotonic() - started, 0.4)

    def test_many_pipelined_frames(self):
        frames, expected = [], []
        for i in range(300):
            if i % 50 == 0:
                frames.append(encode_frame({"op": "ping"}))
                expected.append(("pong", None))
            elif i % 7 == 0:  # async requests in the pipeline keep their place in the order
                frames.append(encode_frame({"event": event("/async_sleep", rid=f"req-p{i}", query={"s": "0"})}))
                expected.append(("event", f"req-p{i}"))
            else:
                frames.append(encode_frame({"event": event("/echo_id", rid=f"req-p{i}")}))
                expected.append(("event", f"req-p{i}"))
        with self.worker.connect() as sock:
            sock.sendall(b"".join(frames))
            for kind, rid in expected:
                reply = recv_frame(sock)
                if kind == "pong":
                    self.assertEqual(reply["op"], "pong")
                else:
                    self.assertEqual(json.loads(reply["body"])["id"], rid)

    def test_half_close_after_request_still_answered(self):
        cases = (
            [event("/echo_id", rid="req-h1")],
            [event("/async_sleep", rid="req-h2", query={"s": "0.1"})],  # still in progress at EOF
            [event("/echo_id", rid="req-h3"), event("/async_sleep", rid="req-h4", query={"s": "0"}),
             event("/echo_id", rid="req-h5")],
        )
        for events in cases:
            with self.worker.connect() as sock:
                sock.sendall(b"".join(encode_frame({"event": ev}) for ev in events))
                sock.shutdown(socket.SHUT_WR)
                for ev in events:
                    self.assertEqual(json.loads(recv_frame(sock)["body"])["id"], ev["id"])
                assert_closed(self, sock)

    def test_get_event_loop_in_sync_handler_is_the_running_loop(self):
        self.assertEqual(json.loads(self.worker.call("/loop")["body"]), {"running": True})

    def test_concurrent_async_output_is_tagged_per_request(self):
        a, b = self.worker.connect(), self.worker.connect()
        with a, b:
            a.sendall(encode_frame({"event": event("/async_print", rid="req-out-a", query={"s": "0.3"})}))
            time.sleep(0.05)
            b.sendall(encode_frame({"event": event("/async_print", rid="req-out-b", query={"s": "0.05"})}))
            self.assertEqual(recv_frame(b)["status"], 200)
            self.assertEqual(recv_frame(a)["status"], 200)
        deadline = time.monotonic() + DEADLINE
        while "end req-out-a" not in self.worker.stdout():
            self.assertLess(time.monotonic() - deadline, 0, "handler output never flushed")
            time.sleep(0.01)
        lines = [line for line in self.worker.stdout().splitlines() if "req-out-" in line]
        self.assertEqual(lines, [
            "[req-out-a] begin req-out-a",
            "[req-out-b] begin req-out-b",
            "[req-out-b] end req-out-b",  # b finished first: it ran while a was waiting
            "[req-out-a] end req-out-a",
        ])

    def test_oversize_frame_gets_413_then_close(self):
        with self.worker.connect() as sock:
            sock.sendall(struct.pack(">I", 8 * 1024 * 1024 + 1) + b'{"event":')
            reply = recv_frame(sock)
            self.assertEqual(reply, {"status": 413, "headers": {"Content-Type": "application/json"},
                                     "body": '{"error":"payload too large"}'})
            assert_closed(self, sock)

    def test_garbage_gets_400_then_close(self):
        for body in (b"{not json", b"[1,2,3]", b'"str"', b'{"neither":1}', b'{"event":"x"}'):
            with self.worker.connect() as sock:
                sock.sendall(struct.pack(">I", len(body)) + body)
                reply = recv_frame(sock)
                self.assertEqual(reply["status"], 400, body)
                self.assertEqual(json.loads(reply["body"]), {"error": "invalid request frame"})
                assert_closed(self, sock)

    def test_tiny_length_just_closes(self):
        for length in (0, 1):
            with self.worker.connect() as sock:
                sock.sendall(struct.pack(">I", length) + b"{}")
                assert_closed(self, sock)

    def test_empty_and_truncated_connections_tolerated(self):
        for junk in (b"", b"\x00\x00", struct.pack(">I", 100) + b'{"op"'):
            with self.worker.connect() as sock:
                sock.sendall(junk)
        self.assertEqual(self.worker.request({"op": "ping"})["op"], "pong")
        self.assertIsNone(self.worker.proc.poll())


class TestInProcess(unittest.TestCase):
    """Worker.reply and the output wrapper, called in this process (no socket)."""

    @classmethod
    def setUpClass(cls):
        spec = importlib.util.spec_from_file_location("fastfn_worker_under_test", WORKER)
        cls.w = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.w)

    def test_output_flushed_only_when_written_and_tagged_per_request(self):
        class Stream(io.StringIO):
            flushes = 0

            def flush(self):
                self.flushes += 1

        def handler(ev):
            if ev["path"] == "/print":
                print("line one")
                print("partial", end="")  # an unfinished line does not carry over to the next request
            return {"ok": True}

        w = self.w
        worker = w.Worker(w.Handler(handler), None, False, w.DEFAULT_MAX_FRAME)
        out, err = Stream(), Stream()

        def reply(path, rid):
            answer, keep = worker.reply(json.dumps({"event": event(path, rid=rid)}).encode())
            self.assertTrue(keep)
            self.assertEqual(json.loads(answer[4:])["status"], 200)

        with mock.patch.object(sys, "stdout", w.RequestTaggedOutput(out, 0)), \
                mock.patch.object(sys, "stderr", w.RequestTaggedOutput(err, 1)):
            for _ in range(3):
                reply("/quiet", "req-q")
            self.assertEqual((out.flushes, err.flushes), (0, 0))
            reply("/print", "req-a")
            self.assertEqual((out.flushes, err.flushes), (1, 0))
            reply("/print", "req-b")
            self.assertEqual((out.flushes, err.flushes), (2, 0))
        self.assertEqual(out.getvalue(), "[req-a] line one\n[req-a] partial[req-b] line one\n[req-b] partial")


class TestDevMode(WorkerCase):
    mode = "dev"

    def test_detail_only_in_dev(self):
        reply = self.worker.call("/boom", rid="req-dev")
        self.assertEqual(json.loads(reply["body"]),
                         {"error": "internal error", "request_id": "req-dev", "detail": "RuntimeError: kaboom"})

    def test_invalid_response_detail(self):
        body = json.loads(self.worker.call("/str")["body"])
        self.assertEqual(body["detail"], "InvalidResponse: handler response must be an object or tuple, got str")


class TestAsync(WorkerCase):
    name = "async_handler"

    def test_async_handler(self):
        with self.worker.connect() as sock:  # several async requests on one connection
            for path in ("/a", "/b"):
                sock.sendall(encode_frame({"event": event(path)}))
                self.assertEqual(json.loads(recv_frame(sock)["body"]), {"async": True, "path": path})


class TestAsyncError(WorkerCase):
    name = "async_boom"
    mode = "dev"

    def test_async_exception(self):
        reply = self.worker.call("/x", rid="req-async")
        self.assertEqual(reply["status"], 500)
        self.assertEqual(json.loads(reply["body"])["detail"], "ValueError: async kaboom")
        self.assertIn("[req-async] Traceback", self.worker.stderr())


class TestParamInjection(unittest.TestCase):
    def test_named_params(self):
        w = Worker(HANDLERS, name="with_params")
        try:
            reply = w.call("/x", params={"id": "42", "other": "ignored"})
            self.assertEqual(json.loads(reply["body"]), {"id": "42", "missing": "default"})
            reply = w.call("/x", params={"id": "7", "missing": "given"})
            self.assertEqual(json.loads(reply["body"]), {"id": "7", "missing": "given"})
        finally:
            w.stop()

    def test_kwargs_get_every_param(self):
        w = Worker(HANDLERS, name="with_kwargs")
        try:
            reply = w.call("/x", params={"id": "1", "slug": "a-b", "event": "not injected"})
            self.assertEqual(json.loads(reply["body"]), {"kw": {"id": "1", "slug": "a-b"}})
            self.assertEqual(json.loads(w.call("/x")["body"]), {"kw": {}})
        finally:
            w.stop()


class TestLoading(unittest.TestCase):
    def check_broken(self, source, name=None, expect_detail=None):
        w = Worker(source, name=name, mode="dev")
        try:
            for i in range(3):
                reply = w.call("/x", rid=f"req-load-{i}")
                self.assertEqual(reply["status"], 500)
                body = json.loads(reply["body"])
                self.assertEqual(body["request_id"], f"req-load-{i}")
                self.assertIn(expect_detail, body["detail"])
            self.assertEqual(w.request({"op": "ping"})["op"], "pong")  # still serving
            self.assertEqual(w.stderr().count("cannot load handler"), 1)  # reported once, not per request
        finally:
            w.stop()

    def test_syntax_error(self):
        self.check_broken("def handler(event)\n    return {}\n", expect_detail="SyntaxError")

    def test_exception_at_import(self):
        self.check_broken("raise ImportError('no such dependency')\n", expect_detail="ImportError: no such dependency")

    def test_missing_symbol(self):
        self.check_broken(HANDLERS, name="nope", expect_detail="AttributeError")

    def test_not_callable(self):
        self.check_broken(HANDLERS, name="not_callable", expect_detail="TypeError")

    def test_main_fallback_and_local_imports(self):
        w = Worker("import helper\n\ndef main(event):\n    return {'from': helper.NAME}\n",
                   files={"helper.py": "NAME = 'helper'\n"})
        try:
            self.assertEqual(json.loads(w.call("/x")["body"]), {"from": "helper"})
            self.assertFalse(os.path.exists(os.path.join(w.fn_dir, "__pycache__")))
        finally:
            w.stop()


class TestProcess(unittest.TestCase):
    def test_sigterm_exits_zero(self):
        w = Worker(HANDLERS)
        try:
            idle = w.connect()  # an open keepalive connection must not hold the worker up
            w.proc.send_signal(signal.SIGTERM)
            self.assertEqual(w.proc.wait(timeout=DEADLINE), 0)
            idle.close()
        finally:
            w.stop()

    def test_sigterm_during_request(self):
        w = Worker(HANDLERS)
        try:
            sock = w.connect()
            sock.sendall(encode_frame({"event": event("/sleep", query={"s": "5"})}))
            time.sleep(0.1)
            started = time.monotonic()
            w.proc.send_signal(signal.SIGTERM)
            self.assertEqual(w.proc.wait(timeout=DEADLINE), 0)
            self.assertLess(time.monotonic() - started, 2)
            sock.close()
        finally:
            w.stop()

    def test_running_out_of_descriptors_answers_then_exits_for_a_fresh_worker(self):
        leak = "LEAKED = []\n\ndef handler(event):\n    for _ in range(200):\n        LEAKED.append(open('/dev/null'))\n    return {'open': len(LEAKED)}\n"
        w = Worker(leak)
        try:
            # RLIMIT_NOFILE as the sandbox sets it (FN_WORKER_MAX_OPEN_FILES, at least 64): here 64 for the process.
            import resource
            resource.prlimit(w.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
            with w.connect() as sock:
                sock.sendall(encode_frame({"event": event("/leak")}))
                reply = recv_frame(sock)
            self.assertEqual(reply["status"], 500)
            self.assertEqual(w.proc.wait(timeout=DEADLINE), 3, "exits with status 3 once it has answered")
            with open(w.stderr_path, encoding="utf-8") as f:
                self.assertIn("worker out of file descriptors; it exits after answering", f.read())
        finally:
            w.stop()

    def test_missing_env_exits_2(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for extra in ({}, {"FN_WORKER_LISTEN_FD": "3"}, {"FN_HANDLER_PATH": "/x.py"}):
            proc = subprocess.run([PYTHON, WORKER], env={**env, **extra}, capture_output=True, timeout=DEADLINE)
            self.assertEqual(proc.returncode, 2)
            self.assertIn(b"not set", proc.stderr)

    def test_fd_not_a_socket_exits_2(self):
        proc = subprocess.run(
            [PYTHON, WORKER], env={"FN_WORKER_LISTEN_FD": "0", "FN_HANDLER_PATH": "/x.py"},
            stdin=subprocess.DEVNULL, capture_output=True, timeout=DEADLINE,
        )
        self.assertEqual(proc.returncode, 2)
        self.assertIn(b"not a listening socket", proc.stderr)


if __name__ == "__main__":
    unittest.main()


class TestPeerCheck(unittest.TestCase):
    """FN_ALLOWED_PEER_UIDS: a connection from any other uid is closed unanswered (SO_PEERCRED)."""

    def test_allowed_peer_is_served(self):
        worker = Worker(HANDLERS, extra_env={"FN_ALLOWED_PEER_UIDS": f"{os.getuid()},12345"})
        try:
            self.assertEqual(worker.request({"op": "ping"})["op"], "pong")
        finally:
            worker.stop()

    def test_other_peers_are_closed_unanswered(self):
        other = 54321 if os.getuid() != 54321 else 54322
        worker = Worker.__new__(Worker)
        # Worker() waits for a ping answer, which this worker must never give: start it by hand.
        worker.dir = tempfile.mkdtemp(prefix="fastfn-pyworker-")
        worker.fn_dir = os.path.join(worker.dir, "fn")
        os.mkdir(worker.fn_dir)
        worker.handler_path = os.path.join(worker.fn_dir, "handler.py")
        with open(worker.handler_path, "w", encoding="utf-8") as f:
            f.write(HANDLERS)
        worker.sock_path = os.path.join(worker.dir, "worker.sock")
        worker.stdout_path = os.path.join(worker.dir, "stdout")
        worker.stderr_path = os.path.join(worker.dir, "stderr")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "FN_HANDLER_PATH": worker.handler_path,
            "FN_FUNCTION_DIR": worker.fn_dir,
            "FN_ALLOWED_PEER_UIDS": str(other),
        }
        with open(worker.stdout_path, "wb") as out, open(worker.stderr_path, "wb") as err:
            worker.proc = subprocess.Popen(
                [PYTHON, LAUNCHER, worker.sock_path, "--", PYTHON, WORKER], env=env, cwd=worker.fn_dir,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        try:
            deadline = time.monotonic() + DEADLINE
            answered = None
            while time.monotonic() < deadline:
                try:
                    sock = worker.connect()
                except OSError:
                    time.sleep(0.02)  # not listening yet
                    continue
                with sock:
                    try:
                        sock.sendall(encode_frame({"op": "ping"}))
                        answered = sock.recv(4)
                    except ConnectionResetError:
                        answered = b""  # closed with our frame unread: a reset, not an answer
                break
            self.assertEqual(answered, b"", "the worker closed the connection without answering")
            self.assertIsNone(worker.proc.poll(), "and kept running")
        finally:
            worker.stop()
