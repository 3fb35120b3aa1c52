#!/usr/bin/env python3
"""fastfn Python worker: one process serves one function (docs/wire.md, docs/event.md).

The supervisor hands us an already-listening unix socket on fd 3. We load the handler once, then answer framed
requests (4-byte big-endian length + UTF-8 JSON object) on one asyncio event loop in the main thread: requests are
sequential within a connection (the next frame waits for the current reply) and interleave across connections.
Per request we only decode, call, normalise and encode. Standard library only.

Concurrency model: a sync handler is called inline on the loop thread (no thread hop), so while it runs — a blocking
time.sleep, a slow query — this process serves nothing else; concurrency for blocking code comes from the function's
pool of worker processes (worker_pool.max_workers). An async handler (`async def`, or any awaitable returned) runs as
a task on the same loop, so many of them proceed concurrently in one process. Inside a sync handler,
asyncio.get_event_loop() is the running loop: schedule work on it, but do not block on it — asyncio.run() and
loop.run_until_complete() raise there; make the handler `async def` and await instead.
"""
import asyncio
import base64
import contextvars
import errno
import importlib.util
import inspect
import json
import os
import re
import signal
import socket
import struct
import sys
import time
import traceback

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 8 * 1024 * 1024
ENVELOPE_KEYS = frozenset(
    ("status", "statusCode", "headers", "body", "body_base64", "is_base64", "isBase64Encoded")
)
JSON_TYPE = "application/json"

# Built once: json.dumps() with non-default arguments constructs a new encoder on every call.
# allow_nan=False because NaN/Infinity are not JSON and the gateway would reject the frame.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class InvalidResponse(Exception):
    """The handler returned something that cannot become a response envelope."""


def frame(obj):
    data = _encode(obj).encode("utf-8")
    return HEADER.pack(len(data)) + data


def error_frame(status, message):
    return frame({"status": status, "headers": {"Content-Type": JSON_TYPE}, "body": _encode({"error": message})})


TOO_LARGE = error_frame(413, "payload too large")
BAD_FRAME = error_frame(400, "invalid request frame")
PONG = frame({"op": "pong", "pid": os.getpid()})


# ----------------------------------------------------------------------------------------------------------------
# Loading the handler (once, before serving)


class Handler:
    """The user function plus what we learned about its signature at load time."""

    def __init__(self, fn):
        self.fn = fn
        self.param_names = ()  # parameters after `event` that event.params may fill by name
        self.var_kw = False  # handler has **kwargs: it gets every route parameter
        self.event_name = None  # name of the `event` parameter, never passed as a keyword
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):  # some builtins/C callables have no signature: call with event only
            return
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if params and params[0].kind in positional:
            if params[0].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD:
                self.event_name = params[0].name
            params = params[1:]
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self.param_names = tuple(p.name for p in params if p.kind in named)
        self.var_kw = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)

    def __call__(self, event):
        if not (self.param_names or self.var_kw):
            return self.fn(event)
        params = event.get("params")
        if not isinstance(params, dict) or not params:
            return self.fn(event)
        if self.var_kw:
            kwargs = {k: v for k, v in params.items() if k != self.event_name}
        else:
            kwargs = {k: params[k] for k in self.param_names if k in params}
        return self.fn(event, **kwargs)


def load_handler(path, name, function_dir, function_name):
    # The function's own modules and vendored deps must win over anything else on the path; the worker's own
    # folder (sys.path[0] when run as a script) must not leak into the function's imports.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if function_dir and function_dir not in sys.path:
        sys.path.insert(0, function_dir)
    # A unique module name so the handler file can never shadow (or be shadowed by) a module it imports.
    module_name = "fastfn_handler_" + re.sub(r"\W", "_", function_name or "function")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a Python module from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses, pickle and typing resolve classes through sys.modules
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if fn is None and name == "handler":
        fn = getattr(module, "main", None)
    if fn is None:
        looked = "`handler` or `main`" if name == "handler" else f"`{name}`"
        raise AttributeError(f"{path} defines no {looked}")
    if not callable(fn):
        raise TypeError(f"`{name}` in {path} is not callable")
    return Handler(fn)


# ----------------------------------------------------------------------------------------------------------------
# Normalising what the handler returns (docs/event.md "What a handler returns")


def _json_body(value):
    try:
        return _encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"response body is not JSON-serialisable: {exc}") from None


def _headers(raw):
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidResponse(f"response headers must be a dict, got {type(raw).__name__}")
    out = {}
    for name, value in raw.items():
        if value is None:  # an unset header, not the text "None"
            continue
        if isinstance(value, (list, tuple)):
            out[str(name)] = [v if isinstance(v, str) else str(v) for v in value]
        else:
            out[str(name)] = value if isinstance(value, str) else str(value)
    return out


def _status(value):
    # bool is an int subclass, but True is not a status code.
    if type(value) is not int or not 100 <= value <= 599:
        raise InvalidResponse(f"response status must be an int 100..599, got {value!r}")
    return value


def _b64_text(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii")
    if not isinstance(value, str):
        raise InvalidResponse(f"base64 body must be a string, got {type(value).__name__}")
    return value


def _envelope(status, headers, body, base64_body=None):
    status = _status(status)
    headers = _headers(headers)
    if base64_body is not None:
        return {"status": status, "headers": headers, "is_base64": True, "body_base64": _b64_text(base64_body)}
    if body is None:
        text = ""
    elif isinstance(body, str):
        text = body
    elif isinstance(body, (bytes, bytearray, memoryview)):
        encoded = base64.b64encode(body).decode("ascii")
        return {"status": status, "headers": headers, "is_base64": True, "body_base64": encoded}
    elif isinstance(body, (dict, list)):
        text = _json_body(body)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = JSON_TYPE
    else:
        text = str(body)
    return {"status": status, "headers": headers, "body": text}


def normalise(result):
    if isinstance(result, dict):
        if ENVELOPE_KEYS.isdisjoint(result):
            return {"status": 200, "headers": {"Content-Type": JSON_TYPE}, "body": _json_body(result)}
        status = result["status"] if "status" in result else result.get("statusCode", 200)
        base64_body = None
        if "body_base64" in result and result.get("is_base64", True):
            base64_body = result["body_base64"]
        elif result.get("isBase64Encoded") and isinstance(result.get("body"), str):
            base64_body = result["body"]  # a bytes body is raw bytes and gets encoded below
        return _envelope(status, result.get("headers"), result.get("body"), base64_body)
    if isinstance(result, tuple) and 1 <= len(result) <= 3:
        body, status, headers = tuple(result) + (200, None)[len(result) - 1:]
        return _envelope(status, headers, body)
    raise InvalidResponse(f"handler response must be an object or tuple, got {type(result).__name__}")


# ----------------------------------------------------------------------------------------------------------------
# Serving


def mask_env_values(text, event):
    """The dev-mode error detail goes back to the client: hide any env value it quotes (the worker cannot tell
    secret values from plain ones, so it hides them all; the supervisor masks logs itself)."""
    env = event.get("env") if isinstance(event, dict) else None
    if isinstance(env, dict):
        for value in sorted((v for v in env.values() if isinstance(v, str) and len(v) >= 4), key=len, reverse=True):
            text = text.replace(value, "<hidden>")
    return text

def exhausted(exc):
    """The resource a handler's error says this process ran out of ("file descriptors", "memory"), or None."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return "file descriptors"
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return "memory"
    return None


# Exit status of a worker that stopped because it ran out of descriptors or memory (a crash for the supervisor, which
# starts a fresh one with its backoff).
EXIT_EXHAUSTED = 3


def exit_exhausted():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(EXIT_EXHAUSTED)


class Worker:
    def __init__(self, handler, load_error, dev, max_frame):
        self.handler = handler
        self.load_error = load_error  # "<Type>: <message>" when loading failed, else None
        self.dev = dev
        self.max_frame = max_frame
        # For the idle timeout (everything runs on the loop thread, so plain counters are exact): frames taken so
        # far, and async requests still in progress. A sync request starts and ends inside one loop callback, so the
        # idle check can never see it in progress.
        self.served = 0
        self.pending = 0
        self.exhausted = False  # a handler ran this process out of descriptors or memory: it exits after answering

    def internal_error(self, request_id, detail, event=None):
        payload = {"error": "internal error", "request_id": request_id}
        if self.dev and detail:
            payload["detail"] = mask_env_values(detail, event)
        return frame({"status": 500, "headers": {"Content-Type": JSON_TYPE}, "body": _encode(payload)})

    def handler_failed(self, request_id, exc, event):
        sys.stderr.write(f"[{request_id}] {format_user_traceback(exc)}")
        if exhausted(exc) and not self.exhausted:
            # Leaked descriptors or memory stay leaked: every later request would fail the same way. Answer this
            # one, then exit, so the supervisor starts a fresh worker (the pool serves meanwhile).
            self.exhausted = True
            sys.stderr.write(f"[{request_id}] fastfn: worker out of {exhausted(exc)}; it exits after answering\n")
            try:
                # call_soon: right after this callback has written the answer (a write to a unix socket lands in
                # the kernel at once), before another request is read.
                asyncio.get_running_loop().call_soon(exit_exhausted)
            except RuntimeError:  # called outside the serving loop (tests): nothing to answer first
                exit_exhausted()
        return self.internal_error(request_id, f"{type(exc).__name__}: {exc}", event)

    def encode(self, result, request_id, event):
        try:
            envelope = normalise(result)
            # Encode here so an unencodable string (a lone surrogate) is reported as this handler's error.
            return frame(envelope)
        except Exception as exc:  # noqa: BLE001
            detail = f"{type(exc).__name__}: {exc}"
            sys.stderr.write(f"[{request_id}] {detail}\n")
            return self.internal_error(request_id, detail, event)

    def handle_event(self, event):
        """Call the handler on one event: the response frame (bytes) or, when the handler gave an awaitable, a
        coroutine that awaits it and returns the frame."""
        request_id = event.get("id")
        if not isinstance(request_id, str):
            context = event.get("context")
            request_id = context.get("request_id") if isinstance(context, dict) else None
            request_id = request_id if isinstance(request_id, str) else "-"
        if self.handler is None:
            return self.internal_error(request_id, self.load_error)
        tag = RequestTag(request_id)
        token = CURRENT.set(tag)
        try:
            result = self.handler(event)
        except BaseException as exc:  # noqa: BLE001 - anything the handler raises is a 500, never a dead worker
            return self.handler_failed(request_id, exc, event)
        finally:
            CURRENT.reset(token)
            flush_written()  # so the handler's prints reach the supervisor's log now, not at exit
        cls = type(result)
        if cls is not dict and cls is not tuple and (hasattr(cls, "__await__") or inspect.isawaitable(result)):
            return self.finish_async(result, tag, event)
        return self.encode(result, request_id, event)

    async def finish_async(self, awaitable, tag, event):
        # Runs as its own task, so it has its own copy of the context: this request's tag stays set for whatever
        # the handler prints, whichever other requests run in between.
        CURRENT.set(tag)
        try:
            result = await awaitable
        except BaseException as exc:  # noqa: BLE001
            return self.handler_failed(tag.request_id, exc, event)
        finally:
            flush_written()
        return self.encode(result, tag.request_id, event)

    def reply(self, body):
        """Answer one request frame's body: (answer, keep the connection open). The answer is the frame to send, or
        for an async handler a coroutine returning it."""
        try:
            # Lenient decoding: a stray invalid byte in the raw request body must not kill the request.
            request = json.loads(body.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            return BAD_FRAME, False
        if not isinstance(request, dict):
            return BAD_FRAME, False
        event = request.get("event")
        if isinstance(event, dict):
            return self.handle_event(event), True
        if request.get("op") == "ping":
            return PONG, True
        return BAD_FRAME, False


# Past this many buffered bytes, a connection that is waiting for its own reply stops reading (the kernel buffer then
# pushes back on the peer). The gateway never pipelines, so this only bounds a misbehaving peer.
READ_AHEAD = 256 * 1024


class Connection(asyncio.Protocol):
    """One connection on the event loop: frames are parsed as bytes arrive and answered in order, one at a time (the
    next frame waits until the current reply is written); other connections are served meanwhile."""

    __slots__ = ("worker", "transport", "buffer", "pending", "write_paused", "read_paused", "eof")

    def __init__(self, worker):
        self.worker = worker
        self.transport = None
        self.buffer = bytearray()
        self.pending = False  # an async handler is working on this connection's current request
        self.write_paused = False  # the transport's write buffer is full: the peer is not reading
        self.read_paused = False
        self.eof = False  # the peer half-closed: answer what is complete, then close

    def connection_made(self, transport):
        self.transport = transport
        if ALLOWED_PEERS and not peer_allowed(transport.get_extra_info("socket"), ALLOWED_PEERS):
            transport.abort()  # closed unanswered, nothing read

    def data_received(self, data):
        self.buffer += data
        if not (self.pending or self.write_paused):
            self.process()
        elif len(self.buffer) > READ_AHEAD and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self):
        self.eof = True
        # Waiting on a reply: keep the write side open and close after answering. Otherwise every complete frame has
        # been answered, and what is left is nothing or a truncated frame: close.
        return self.pending or self.write_paused

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        self.unblock()

    def unblock(self):
        if self.pending or self.write_paused:
            return
        self.process()
        if self.read_paused and not (self.pending or self.write_paused):
            self.read_paused = False
            self.transport.resume_reading()

    def process(self):
        buffer, worker, transport = self.buffer, self.worker, self.transport
        while len(buffer) >= 4:
            (length,) = HEADER.unpack_from(buffer)
            if length > worker.max_frame:
                transport.write(TOO_LARGE)  # answer without reading the body, then close
                transport.close()
                return
            if length < 2:
                transport.close()
                return
            end = length + 4
            if len(buffer) < end:
                break  # the rest of the frame has not arrived yet
            body = buffer[4:end]
            del buffer[:end]
            worker.served += 1
            answer, keep = worker.reply(body)
            if answer.__class__ is not bytes:
                self.start(answer)
                return
            transport.write(answer)
            if not keep:
                transport.close()
                return
            if self.write_paused or transport.is_closing():
                return
        if self.eof:
            transport.close()

    def start(self, coro):
        self.pending = True
        self.worker.pending += 1
        task = asyncio.get_running_loop().create_task(self.finish(coro))
        # The loop holds tasks weakly: keep a reference until it is done.
        TASKS.add(task)
        task.add_done_callback(TASKS.discard)

    async def finish(self, coro):
        try:
            answer = await coro  # never raises: the handler's errors become 500 frames
        finally:
            self.pending = False
            self.worker.pending -= 1
            self.worker.served += 1  # its end is activity too, for the idle timeout
        transport = self.transport
        if transport.is_closing():
            return  # the peer went away meanwhile: nobody to answer
        transport.write(answer)
        self.unblock()


TASKS = set()


class RequestTag:
    """The request a handler is serving, so its prints can be told apart in the log; and, per stream, whether its
    output is at the start of a line."""

    __slots__ = ("request_id", "line_start")

    def __init__(self, request_id):
        self.request_id = request_id
        self.line_start = [True, True]  # stdout, stderr


# Set around each sync call and inside each async request's task (tasks copy the context), so concurrent async
# handlers each tag their own lines.
CURRENT = contextvars.ContextVar("fastfn_request", default=None)


class RequestTaggedOutput:
    """Wraps stdout/stderr: every line a handler prints starts with its request id (the supervisor adds the function
    name). Outside a request (loading, threads the handler started), lines pass unchanged."""

    def __init__(self, stream, index):
        self._stream = stream
        self._index = index  # which of RequestTag.line_start is ours
        self.written = False  # since the last flush_written(): flush only what was written

    def write(self, text):
        self.written = True
        tag = CURRENT.get()
        if tag is None or not text:
            return self._stream.write(text)
        start = tag.line_start[self._index]
        out = []
        for piece in text.splitlines(keepends=True):
            out.append(f"[{tag.request_id}] {piece}" if start else piece)
            start = piece.endswith("\n")
        tag.line_start[self._index] = start
        return self._stream.write("".join(out))

    def flush(self):
        return self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def flush_written():
    """After a handler ran: flush stdout/stderr if anything was written to them (a stream that is not ours, e.g. one
    the handler installed, is flushed always)."""
    for stream in (sys.stdout, sys.stderr):
        if stream.__class__ is RequestTaggedOutput:
            if not stream.written:
                continue
            stream.written = False
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or its reader gone: not the request's problem
            pass


def flush_stdout():
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # stdout closed or its reader gone: not the request's problem
        pass


_ASYNCIO_DIR = os.path.dirname(asyncio.__file__)


def format_user_traceback(exc):
    # Drop the leading frames of this file, asyncio and importlib, so the trace starts in the user's code.
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename != __file__ and not filename.startswith((_ASYNCIO_DIR, "<frozen ")):
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def allowed_peer_uids():
    # The supervisor names the uids allowed to call this worker (the gateway's and its own): Landlock does not govern
    # connect() to a unix socket, so the worker checks who is on the other end (SO_PEERCRED).
    text = os.environ.get("FN_ALLOWED_PEER_UIDS", "")
    try:
        return frozenset(int(u) for u in text.split(",") if u.strip())
    except ValueError:
        return frozenset()


PEERCRED = struct.Struct("3i")


def peer_allowed(conn, allowed):
    if not allowed:
        return True
    try:
        _pid, uid, _gid = PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
    except (OSError, AttributeError):  # AttributeError: no socket (the transport is already gone)
        return False
    return uid in allowed


def serve(loop, listener, worker, idle_ttl):
    # Signals keep their Python-level handler (on_terminate, installed before loading): it runs in the main thread at
    # once, even while a sync handler blocks the loop (time.sleep is interrupted), which a handler registered with
    # loop.add_signal_handler would not (it runs only when the loop gets control back). The wake-up pipe makes a
    # signal delivered to another thread (one the handler started) wake the loop's epoll, so the handler runs.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    loop.add_reader(wake_r, _drain, wake_r)
    # backlog: create_unix_server calls listen() again on the socket; keep a generous queue.
    loop.run_until_complete(loop.create_unix_server(lambda: Connection(worker), sock=listener, backlog=1024))
    if idle_ttl > 0:
        # Once a second: exit 0 (telling the supervisor "idle", not "crashed") when no request is in progress and
        # none has been seen for idle_ttl seconds.
        seen = [worker.served, time.monotonic()]

        def check_idle():
            now = time.monotonic()
            if worker.pending or worker.served != seen[0]:
                seen[0], seen[1] = worker.served, now
            elif now - seen[1] >= idle_ttl:
                flush_stdout()
                os._exit(0)
            loop.call_later(1, check_idle)

        loop.call_later(1, check_idle)
    loop.run_forever()


def _drain(fd):
    try:
        os.read(fd, 512)  # a signal that did not end the process (none today): drain and go on
    except OSError:
        pass


def on_terminate(signum, frame_):
    # os._exit, not sys.exit: requests in progress or user atexit hooks (e.g. a ThreadPoolExecutor join) must not
    # delay a shutdown the supervisor asked for.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(0)


def make_undumpable():
    # exec reset PR_SET_DUMPABLE: set it again, so no process of the same user can read this one's memory or
    # /proc files (hardening.md §0.9). Best effort: the sandbox does not depend on it alone.
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


ALLOWED_PEERS = allowed_peer_uids()


def main():
    env = os.environ
    fd_text, handler_path = env.get("FN_WORKER_LISTEN_FD"), env.get("FN_HANDLER_PATH")
    if not fd_text or not handler_path:
        names = (("FN_WORKER_LISTEN_FD", fd_text), ("FN_HANDLER_PATH", handler_path))
        missing = " and ".join(name for name, value in names if not value)
        sys.stderr.write(f"fastfn python worker: {missing} not set; it is started by the fastfn supervisor\n")
        sys.exit(2)
    try:
        listener = socket.socket(fileno=int(fd_text))
        if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
            raise OSError("not a unix stream socket")
        listener.setblocking(False)  # the event loop accepts without blocking
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"fastfn python worker: FN_WORKER_LISTEN_FD={fd_text} is not a listening socket: {exc}\n")
        sys.exit(2)
    try:
        max_frame = int(env.get("FN_MAX_FRAME_BYTES") or DEFAULT_MAX_FRAME)
    except ValueError:
        max_frame = DEFAULT_MAX_FRAME
    make_undumpable()
    sys.stdout = RequestTaggedOutput(sys.stdout, 0)
    sys.stderr = RequestTaggedOutput(sys.stderr, 1)
    signal.signal(signal.SIGTERM, on_terminate)  # before loading: a slow import must still stop cleanly
    signal.signal(signal.SIGINT, on_terminate)
    # The loop exists before the handler is imported, so module-level code that asks for the event loop (to make a
    # client or a lock) gets the one that will serve it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The function folder is read-only in the sandbox, and run state never goes into it: no __pycache__ there.
    sys.dont_write_bytecode = True
    function_name = env.get("FN_FUNCTION_NAME", "")
    handler, load_error = None, None
    try:
        handler = load_handler(
            handler_path,
            env.get("FN_HANDLER_NAME") or "handler",
            env.get("FN_FUNCTION_DIR") or os.path.dirname(handler_path),
            function_name,
        )
    except BaseException as exc:  # noqa: BLE001 - a broken handler must not stop the worker from answering
        load_error = f"{type(exc).__name__}: {exc}"
        sys.stderr.write(f"fastfn: cannot load handler of `{function_name}` from {handler_path}:\n")
        sys.stderr.write(format_user_traceback(exc))
    asyncio.set_event_loop(loop)  # again: an asyncio.run() at import time unsets it when done
    try:
        idle_ttl = max(0, int(env.get("FN_IDLE_TTL_SECONDS") or 0))
    except ValueError:
        idle_ttl = 0
    serve(loop, listener, Worker(handler, load_error, env.get("FN_MODE") == "dev", max_frame), idle_ttl)


if __name__ == "__main__":
    main()
