"""Tests of the PHP worker, run as a real `php` process on a real unix socket handed over as fd 3.

    python3 -m unittest discover -s runtimes/php -p 'test_*.py' -v

Skipped when no `php` binary is on PATH.
"""

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

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.php")
LAUNCHER = os.path.join(HERE, "..", "testing", "launch_with_socket.py")
PYTHON = sys.executable
PHP = shutil.which("php")
DEADLINE = 10.0  # seconds to wait for any observable event before failing

# One handler file serves most cases: `handler` dispatches on the event path, so one worker covers every return shape.
HANDLERS = textwrap.dedent(
    r'''
    <?php
    function handler(array $event)
    {
        $name = trim($event['path'], '/');
        switch ($name) {
            case 'array': return ['hello' => 'wörld', 'method' => $event['method'], 'url' => 'a/b'];
            case 'list': return [1, 2];
            case 'empty_array': return [];
            case 'object': return (object) ['x' => 1.0];
            case 'envelope':
                return ['status' => 201, 'headers' => ['X-Multi' => ['a', 2], 'X-Num' => 5, 'X-None' => null],
                        'body' => 'made'];
            case 'status_code': return ['statusCode' => 202, 'body' => ['ok' => true]];
            case 'own_type': return ['status' => 200, 'headers' => ['content-type' => 'application/vnd.api+json'],
                                     'body' => [1]];
            case 'no_headers': return ['status' => 200, 'body' => 'x'];
            case 'binary': return ['status' => 200, 'headers' => ['Content-Type' => 'image/png'],
                                   'body' => "\x89PNG\x00"];
            case 'binary_string': return "\xff\xfe\x00\x01";
            case 'b64_alias': return ['statusCode' => 200, 'isBase64Encoded' => true, 'body' => 'AAE='];
            case 'b64_pair': return ['status' => 200, 'is_base64' => true, 'body_base64' => 'AAE='];
            case 'text': return 'plain words';
            case 'html': return "  \n<p>hi</p>";
            case 'number': return 42;
            case 'null': return null;
            case 'echo_null': echo 'echoed'; return null;
            case 'echo_empty': print '<b>echoed</b>'; return '';
            case 'echo_string': echo 'head:'; return 'tail';
            case 'echo_envelope': echo 'from echo'; return ['status' => 202, 'headers' => ['X-E' => '1']];
            case 'echo_array': echo 'to the log'; return ['a' => 1];
            case 'echo_unclosed': ob_start(); echo 'inner'; return null;
            case 'runtime_status': http_response_code(404); $GLOBALS['FASTFN_HEADERS'] = ['X-G' => 'g']; return 'gone';
            case 'status_600': return ['status' => 600, 'body' => ''];
            case 'status_str': return ['status' => '200', 'body' => ''];
            case 'bad_headers': return ['status' => 200, 'headers' => 'X-A: 1'];
            case 'nan': return ['x' => NAN];
            case 'boom': throw new RuntimeException('kaboom ' . ($event['env']['SECRET'] ?? ''));
            case 'warning': $a = []; return ['v' => $a['missing']];
            case 'silenced': $a = []; return ['v' => @$a['missing']];
            case 'sleep': usleep((int) ($event['query']['s'] * 1e6)); return ['slept' => $event['query']['s']];
            case 'big': return str_repeat('é', (int) $event['query']['n']);
            case 'deprecated': trigger_error('old api', E_USER_DEPRECATED); return 'still ok';
            case 'stderr': fwrite(STDERR, "to stderr\n"); return ['ok' => true];
            case 'exit': echo 'bye'; exit(0);
            case 'fatal': eval('function strlen($x) {}');
        }
        return ['unknown' => $name];
    }
    '''
).lstrip()


def event(path="/array", rid="req-1-2-000001", **extra):
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
    """A PHP worker process serving one handler file, with stdout/stderr captured to files."""

    def __init__(self, source, mode="run", extra_env=None, files=None, wait=True):
        self.dir = tempfile.mkdtemp(prefix="fastfn-phpworker-")
        self.fn_dir = os.path.join(self.dir, "fn")
        os.mkdir(self.fn_dir)
        self.handler_path = os.path.join(self.fn_dir, "handler.php")
        for name, text in {**(files or {}), "handler.php": source}.items():
            with open(os.path.join(self.fn_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
        self.sock_path = os.path.join(self.dir, "worker.sock")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "FN_RUNTIME": "php",
            "FN_FUNCTION_NAME": "php/test",
            "FN_FUNCTION_DIR": self.fn_dir,
            "FN_HANDLER_PATH": self.handler_path,
            "FN_HANDLER_NAME": "handler",
            "FN_MODE": mode,
        }
        env.update(extra_env or {})
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, LAUNCHER, self.sock_path, "--", PHP, WORKER],
                env=env, cwd=self.fn_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        if wait:
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

    def call(self, path="/array", **kw):
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


def body_of(reply):
    return json.loads(reply["body"])


@unittest.skipUnless(PHP, "php is not installed")
class WorkerCase(unittest.TestCase):
    """Shares one worker on HANDLERS across the tests of a class."""

    mode = "run"
    source = HANDLERS

    @classmethod
    def setUpClass(cls):
        cls.worker = Worker(cls.source, mode=cls.mode)

    @classmethod
    def tearDownClass(cls):
        cls.worker.stop()


class TestReturnShapes(WorkerCase):
    def test_ping(self):
        reply = self.worker.request({"op": "ping"})
        self.assertEqual(reply, {"op": "pong", "pid": self.worker.proc.pid})  # the launcher execs: same pid

    def test_array_is_json(self):
        reply = self.worker.call("/array")
        self.assertEqual(reply["status"], 200)
        self.assertEqual(reply["headers"], {"Content-Type": "application/json"})
        self.assertEqual(reply["body"], '{"hello":"wörld","method":"GET","url":"a/b"}')  # compact, UTF-8 kept

    def test_other_json_values(self):
        self.assertEqual(self.worker.call("/list")["body"], "[1,2]")
        self.assertEqual(self.worker.call("/empty_array")["body"], "[]")
        reply = self.worker.call("/object")
        self.assertEqual((reply["headers"], reply["body"]), ({"Content-Type": "application/json"}, '{"x":1.0}'))

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

    def test_envelope_without_headers_has_an_object(self):
        self.assertEqual(self.worker.call("/no_headers"), {"status": 200, "headers": {}, "body": "x"})

    def test_binary_body_is_base64(self):
        reply = self.worker.call("/binary")
        self.assertEqual(reply, {"status": 200, "headers": {"Content-Type": "image/png"}, "is_base64": True,
                                 "body_base64": "iVBORwA="})
        reply = self.worker.call("/binary_string")
        self.assertEqual(reply, {"status": 200, "headers": {"Content-Type": "application/octet-stream"},
                                 "is_base64": True, "body_base64": "//4AAQ=="})

    def test_base64_aliases(self):
        for path in ("/b64_alias", "/b64_pair"):
            reply = self.worker.call(path)
            self.assertEqual(reply, {"status": 200, "headers": {}, "is_base64": True, "body_base64": "AAE="}, path)

    def test_strings_are_sniffed(self):
        self.assertEqual(self.worker.call("/text"),
                         {"status": 200, "headers": {"Content-Type": "text/plain; charset=utf-8"},
                          "body": "plain words"})
        self.assertEqual(self.worker.call("/html"),
                         {"status": 200, "headers": {"Content-Type": "text/html; charset=utf-8"},
                          "body": "  \n<p>hi</p>"})
        self.assertEqual(self.worker.call("/number")["body"], "42")

    def test_null_is_empty(self):
        self.assertEqual(self.worker.call("/null"), {"status": 200, "headers": {}, "body": ""})

    def test_echo_is_the_body_of_null_or_empty(self):
        self.assertEqual(self.worker.call("/echo_null"),
                         {"status": 200, "headers": {"Content-Type": "text/plain; charset=utf-8"}, "body": "echoed"})
        self.assertEqual(self.worker.call("/echo_empty"),
                         {"status": 200, "headers": {"Content-Type": "text/html; charset=utf-8"},
                          "body": "<b>echoed</b>"})
        self.assertEqual(self.worker.call("/echo_unclosed")["body"], "inner")  # a buffer left open is collected

    def test_echo_is_prepended_to_a_string(self):
        self.assertEqual(self.worker.call("/echo_string")["body"], "head:tail")

    def test_echo_fills_an_envelope_without_body(self):
        self.assertEqual(self.worker.call("/echo_envelope"),
                         {"status": 202, "headers": {"X-E": "1", "Content-Type": "text/plain; charset=utf-8"},
                          "body": "from echo"})

    def test_echo_beside_an_array_goes_to_the_log(self):
        self.assertEqual(self.worker.call("/echo_array")["body"], '{"a":1}')
        self.wait_for(self.worker.stdout, "to the log")

    def test_echo_does_not_leak_into_the_next_request(self):
        self.worker.call("/echo_null")
        self.assertEqual(self.worker.call("/null")["body"], "")

    def test_http_response_code_and_global_headers(self):
        reply = self.worker.call("/runtime_status")
        self.assertEqual(reply, {"status": 404, "headers": {"X-G": "g", "Content-Type": "text/plain; charset=utf-8"},
                                 "body": "gone"})
        self.assertEqual(self.worker.call("/text")["status"], 200)  # reset for the next request
        self.assertNotIn("X-G", self.worker.call("/text")["headers"])

    def test_invalid_returns_are_handler_errors(self):
        for path in ("/status_600", "/status_str", "/bad_headers", "/nan"):
            reply = self.worker.call(path, rid="req-bad")
            self.assertEqual(reply["status"], 500, path)
            self.assertEqual(body_of(reply), {"error": "internal error", "request_id": "req-bad"}, path)
        self.assertIn("[req-bad] InvalidResponse: response status must be an int 100..599, got 600",
                      self.worker.stderr())

    def test_handler_exception_run_mode(self):
        reply = self.worker.call("/boom", rid="req-boom-1")
        self.assertEqual(reply["status"], 500)
        self.assertEqual(reply["headers"], {"Content-Type": "application/json"})
        self.assertEqual(body_of(reply), {"error": "internal error", "request_id": "req-boom-1"})
        err = self.worker.stderr()
        self.assertIn("[req-boom-1] RuntimeException: kaboom", err)
        self.assertIn("handler.php", err)
        self.assertNotIn("worker.php", err)  # the trace starts in the user's code

    def test_request_id_from_context(self):
        ev = event("/boom")
        del ev["id"]
        ev["context"] = {"request_id": "req-ctx"}
        self.assertEqual(body_of(self.worker.request({"event": ev}))["request_id"], "req-ctx")

    def test_warning_is_an_error_unless_silenced(self):
        reply = self.worker.call("/warning", rid="req-warn")
        self.assertEqual(reply["status"], 500)
        self.assertIn('[req-warn] ErrorException: Undefined array key "missing"', self.worker.stderr())
        self.assertEqual(self.worker.call("/silenced")["body"], '{"v":null}')

    def test_deprecation_is_only_logged(self):
        self.assertEqual(self.worker.call("/deprecated")["body"], "still ok")
        self.wait_for(self.worker.stderr, "old api")

    def test_stderr_reaches_the_log(self):
        self.assertEqual(self.worker.call("/stderr")["status"], 200)
        self.wait_for(self.worker.stderr, "to stderr")

    def test_many_requests_on_one_connection(self):
        with self.worker.connect() as sock:
            for i in range(50):
                sock.sendall(encode_frame({"event": event("/array", rid=f"req-{i}")}))
                self.assertEqual(recv_frame(sock)["status"], 200)
            sock.sendall(encode_frame({"op": "ping"}))
            self.assertEqual(recv_frame(sock)["op"], "pong")

    def test_pipelined_frames_in_one_write(self):
        with self.worker.connect() as sock:
            sock.sendall(encode_frame({"op": "ping"}) + encode_frame({"event": event("/text")}))
            self.assertEqual(recv_frame(sock)["op"], "pong")
            self.assertEqual(recv_frame(sock)["body"], "plain words")

    def test_frame_split_into_single_bytes(self):
        data = encode_frame({"event": event("/array")}) * 2
        with self.worker.connect() as sock:
            for i in range(len(data)):
                sock.send(data[i:i + 1])
            self.assertEqual(recv_frame(sock)["status"], 200)
            self.assertEqual(recv_frame(sock)["status"], 200)

    def test_idle_and_partial_connections_do_not_block_others(self):
        idle, partial = self.worker.connect(), self.worker.connect()
        with idle, partial:
            partial.sendall(encode_frame({"event": event("/array")})[:10])  # a slow client, mid-frame
            self.assertEqual(self.worker.call("/text")["body"], "plain words")
            partial.sendall(encode_frame({"event": event("/array")})[10:])
            self.assertEqual(recv_frame(partial)["status"], 200)
            idle.sendall(encode_frame({"op": "ping"}))
            self.assertEqual(recv_frame(idle)["op"], "pong")

    def test_large_request_and_response(self):
        n = 3 * 1024 * 1024  # 6 MiB of UTF-8 each way: many reads and partial writes
        with self.worker.connect() as sock:
            sock.sendall(encode_frame({"event": event("/big", query={"n": str(n)}, body="a" * (6 * 1024 * 1024))}))
            time.sleep(0.2)  # let the worker meet a full socket buffer
            reply = recv_frame(sock)
            self.assertEqual(len(reply["body"]), n)
            self.assertEqual(reply["body"][:2], "éé")
            sock.sendall(encode_frame({"op": "ping"}))
            self.assertEqual(recv_frame(sock)["op"], "pong")

    def test_oversize_frame_gets_413_then_close(self):
        with self.worker.connect() as sock:
            sock.sendall(struct.pack(">I", 8 * 1024 * 1024 + 1) + b'{"event":')
            reply = recv_frame(sock)
            self.assertEqual(reply, {"status": 413, "headers": {"Content-Type": "application/json"},
                                     "body": '{"error":"payload too large"}'})
            assert_closed(self, sock)

    def test_garbage_gets_400_then_close(self):
        for body in (b"{not json", b"[1,2,3]", b'"str"', b'{"neither":1}', b'{"event":"x"}', b'{"event":[1]}'):
            with self.worker.connect() as sock:
                sock.sendall(struct.pack(">I", len(body)) + body)
                reply = recv_frame(sock)
                self.assertEqual(reply["status"], 400, body)
                self.assertEqual(body_of(reply), {"error": "invalid request frame"})
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

    def wait_for(self, read, text):
        deadline = time.monotonic() + DEADLINE
        while text not in read():
            self.assertLess(time.monotonic(), deadline, f"{text!r} never appeared")
            time.sleep(0.01)


class TestDevMode(WorkerCase):
    mode = "dev"

    def test_detail_only_in_dev_with_env_values_hidden(self):
        reply = self.worker.call("/boom", rid="req-dev", env={"SECRET": "s3cr3t-value", "SHORT": "abc"})
        self.assertEqual(body_of(reply), {"error": "internal error", "request_id": "req-dev",
                                          "detail": "RuntimeException: kaboom <hidden>"})
        self.assertIn("kaboom s3cr3t-value", self.worker.stderr())  # the log is the supervisor's to mask

    def test_invalid_response_detail(self):
        self.assertEqual(body_of(self.worker.call("/status_str"))["detail"],
                         "InvalidResponse: response status must be an int 100..599, got '200'")


PARAMS_HANDLER = """<?php
namespace App\\Api;

function helper() { return 'h'; }

function Handler($event, $params) {
    return ['params' => $params, 'helper' => helper(), 'id' => $params['id'] ?? null];
}
"""

ONE_PARAM_HANDLER = """<?php
class Router { function handler($x) { return 'method'; } }
function handler($event) { return ['args' => func_num_args()]; }
"""


@unittest.skipUnless(PHP, "php is not installed")
class TestParamInjection(unittest.TestCase):
    def test_event_and_params(self):
        w = Worker(PARAMS_HANDLER)  # namespaced, any case
        try:
            self.assertEqual(body_of(w.call("/x", params={"id": "42"})),
                             {"params": {"id": "42"}, "helper": "h", "id": "42"})
            self.assertEqual(body_of(w.call("/x")), {"params": [], "helper": "h", "id": None})
        finally:
            w.stop()

    def test_single_parameter_gets_only_the_event(self):
        w = Worker(ONE_PARAM_HANDLER)  # and the method named handler is not the handler
        try:
            self.assertEqual(body_of(w.call("/x", params={"id": "1"})), {"args": 1})
        finally:
            w.stop()


SCRIPT = """<?php
$FASTFN_STATUS = 201;
$FASTFN_HEADERS = ['Content-Type' => 'text/csv; charset=utf-8', 'X-Rows' => 2];
echo "id,name\\n";
echo "1,{$params['name']}\\n";
"""

SCRIPT_GLOBALS = """<?php
global $FASTFN_STATUS;
if ($event['path'] === '/missing') {
    http_response_code(404);
    echo 'no such thing';
    return;
}
if ($event['path'] === '/exit') {
    $GLOBALS['FASTFN_HEADERS'] = ['X-Exit' => 'yes'];
    die('<p>stopped</p>');
}
$FASTFN_STATUS = 202;
echo 'path=', $event['path'];
"""


@unittest.skipUnless(PHP, "php is not installed")
class TestScriptMode(unittest.TestCase):
    def test_output_status_and_headers(self):
        w = Worker(SCRIPT)
        try:
            for name in ("ann", "bob"):  # the script runs on every request
                reply = w.call("/x", params={"name": name})
                self.assertEqual(reply, {"status": 201,
                                         "headers": {"Content-Type": "text/csv; charset=utf-8", "X-Rows": "2"},
                                         "body": f"id,name\n1,{name}\n"})
        finally:
            w.stop()

    def test_global_status_and_http_response_code(self):
        w = Worker(SCRIPT_GLOBALS)
        try:
            self.assertEqual(w.call("/missing"),
                             {"status": 404, "headers": {"Content-Type": "text/plain; charset=utf-8"},
                              "body": "no such thing"})
            reply = w.call("/a")
            self.assertEqual((reply["status"], reply["body"]), (202, "path=/a"))
        finally:
            w.stop()

    def test_top_level_declarations_are_reported(self):
        w = Worker("<?php\nfunction row($x) { return \"<li>$x</li>\"; }\necho row($event['path']);\n")
        try:
            self.assertEqual(w.call("/a")["body"], "<li>/a</li>")
            self.assertIn("declares function row()", w.stderr())
        finally:
            w.stop()

    def test_exit_answers_with_the_output_then_the_worker_ends(self):
        w = Worker(SCRIPT_GLOBALS)
        try:
            self.assertEqual(w.call("/exit", rid="req-exit"),
                             {"status": 200, "headers": {"X-Exit": "yes", "Content-Type": "text/html; charset=utf-8"},
                              "body": "<p>stopped</p>"})
            w.proc.wait(timeout=DEADLINE)
            self.assertIn("[req-exit] the handler called exit()", w.stderr())
        finally:
            w.stop()


@unittest.skipUnless(PHP, "php is not installed")
class TestLoading(unittest.TestCase):
    def check_broken(self, source, expect_detail):
        w = Worker(source, mode="dev")
        try:
            for i in range(3):
                reply = w.call("/x", rid=f"req-load-{i}")
                self.assertEqual(reply["status"], 500)
                body = body_of(reply)
                self.assertEqual(body["request_id"], f"req-load-{i}")
                self.assertIn(expect_detail, body["detail"])
            self.assertEqual(w.request({"op": "ping"})["op"], "pong")  # still serving
            self.assertEqual(w.stderr().count("cannot load handler"), 1)  # reported once, not per request
            self.assertIsNone(w.proc.poll())
        finally:
            w.stop()

    def test_syntax_error(self):
        self.check_broken("<?php\nfunction handler($event) {\n  return [\n}\n", "ParseError: ")

    def test_exception_at_load(self):
        self.check_broken("<?php\nthrow new LogicException('no such dependency');\nfunction handler($e) {}\n",
                          "LogicException: no such dependency")

    def test_fatal_error_at_load(self):
        self.check_broken("<?php\nfunction strlen($x) {}\nfunction handler($e) { return []; }\n",
                          "FatalError: Cannot redeclare strlen()")

    def test_missing_file(self):
        w = Worker("", mode="dev", extra_env={"FN_HANDLER_PATH": "/nonexistent/handler.php"})
        try:
            self.assertEqual(body_of(w.call("/x"))["detail"],
                             "RuntimeException: cannot read /nonexistent/handler.php")
        finally:
            w.stop()

    def test_run_mode_has_no_detail(self):
        w = Worker("<?php\nfunction handler($event) {\n", mode="run")
        try:
            self.assertEqual(body_of(w.call("/x", rid="req-r")), {"error": "internal error", "request_id": "req-r"})
        finally:
            w.stop()

    def test_output_while_loading_goes_to_the_log(self):
        w = Worker("<?php\necho 'loading';\nfunction handler($e) { return null; }\n")
        try:
            self.assertEqual(w.call("/x")["body"], "")
            self.assertIn("loading", w.stdout())
        finally:
            w.stop()


@unittest.skipUnless(PHP, "php is not installed")
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
            time.sleep(0.2)
            started = time.monotonic()
            w.proc.send_signal(signal.SIGTERM)
            self.assertEqual(w.proc.wait(timeout=DEADLINE), 0)
            self.assertLess(time.monotonic() - started, 2)
            sock.close()
        finally:
            w.stop()

    def test_idle_ttl_exits_zero(self):
        w = Worker(HANDLERS, extra_env={"FN_IDLE_TTL_SECONDS": "1"})
        try:
            started = time.monotonic()
            self.assertEqual(w.call("/array")["status"], 200)
            self.assertEqual(w.proc.wait(timeout=DEADLINE), 0)
            self.assertGreaterEqual(time.monotonic() - started, 1)
        finally:
            w.stop()

    def test_handler_exit_in_handler_mode(self):
        w = Worker(HANDLERS)
        try:
            reply = w.call("/exit")
            self.assertEqual((reply["status"], reply["body"]), (200, "bye"))
            w.proc.wait(timeout=DEADLINE)
        finally:
            w.stop()

    def test_fatal_error_in_handler_answers_500_then_exits(self):
        w = Worker(HANDLERS, mode="dev")
        try:
            reply = w.call("/fatal", rid="req-fatal")
            self.assertEqual(body_of(reply), {"error": "internal error", "request_id": "req-fatal",
                                              "detail": "FatalError: Cannot redeclare strlen()"})
            self.assertNotEqual(w.proc.wait(timeout=DEADLINE), 0)
            self.assertIn("[req-fatal] FatalError: Cannot redeclare strlen()", w.stderr())
        finally:
            w.stop()

    def test_small_max_frame(self):
        w = Worker(HANDLERS, extra_env={"FN_MAX_FRAME_BYTES": "200"})
        try:
            self.assertEqual(w.call("/text")["status"], 200)
            self.assertEqual(w.call("/text", body="x" * 300)["status"], 413)
        finally:
            w.stop()

    def test_missing_env_exits_2(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for extra in ({}, {"FN_WORKER_LISTEN_FD": "3"}, {"FN_HANDLER_PATH": "/x.php"}):
            proc = subprocess.run([PHP, WORKER], env={**env, **extra}, capture_output=True, timeout=DEADLINE)
            self.assertEqual(proc.returncode, 2)
            self.assertIn(b"not set", proc.stderr)

    def test_fd_not_a_socket_exits_2(self):
        for fd in ("0", "x", "99"):
            proc = subprocess.run(
                [PHP, WORKER], env={"FN_WORKER_LISTEN_FD": fd, "FN_HANDLER_PATH": "/x.php"},
                stdin=subprocess.DEVNULL, capture_output=True, timeout=DEADLINE,
            )
            self.assertEqual(proc.returncode, 2, fd)
            self.assertIn(b"not a listening socket", proc.stderr)


@unittest.skipUnless(PHP, "php is not installed")
class TestPeerCheck(unittest.TestCase):
    """FN_ALLOWED_PEER_UIDS: a connection from any other uid is closed unanswered (SO_PASSCRED/SCM_CREDENTIALS)."""

    def test_allowed_peer_is_served(self):
        w = Worker(HANDLERS, extra_env={"FN_ALLOWED_PEER_UIDS": f"{os.getuid()},12345"})
        try:
            with w.connect() as sock:  # checked once, on the first read; later frames are served as usual
                for _ in range(3):
                    sock.sendall(encode_frame({"event": event("/text")}))
                    self.assertEqual(recv_frame(sock)["body"], "plain words")
        finally:
            w.stop()

    def test_other_peers_are_closed_unanswered(self):
        other = 54321 if os.getuid() != 54321 else 54322
        # Worker() waits for a ping answer, which this worker must never give.
        w = Worker(HANDLERS, extra_env={"FN_ALLOWED_PEER_UIDS": str(other)}, wait=False)
        try:
            deadline = time.monotonic() + DEADLINE
            answered = None
            while time.monotonic() < deadline:
                try:
                    sock = w.connect()
                except OSError:
                    time.sleep(0.02)  # not listening yet
                    continue
                with sock:
                    try:
                        sock.sendall(encode_frame({"op": "ping"}))
                        answered = sock.recv(4)
                    except ConnectionResetError:
                        answered = b""
                break
            self.assertEqual(answered, b"", "the worker closed the connection without answering")
            self.assertIsNone(w.proc.poll(), "and kept running")
        finally:
            w.stop()


if __name__ == "__main__":
    unittest.main()
