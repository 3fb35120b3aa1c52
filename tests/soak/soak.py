#!/usr/bin/env python3
"""fastfn soak: mixed traffic over every runtime for N minutes, with worker kills and hot-reload edits.

tests/soak/run.sh builds the release binary and runs this; it is not part of scripts/test.sh. Standard library only.

What it does:
- copies tests/soak/functions/ to a temp dir and starts `fastfn dev --native` (hot reload on) on a free loopback port
  with a private --run-dir and --ready-file;
- client threads (http.client, keep-alive) send a steady mix of requests over every function: a hello per runtime
  (Python, Node, PHP, Go, Lua), a Python function that logs `soak-line <n>` for the `n` of its query, a Node JSON echo
  (POST) and a Python function the soak rewrites; statuses, bodies and latencies are counted per path;
- every --fault-every seconds, alternating: SIGKILL one function worker (the functions take turns; the pid comes from
  `fastfn status --json`), or rewrite soak-edit's handler (alternately in place and by rename) and wait until its
  answers show the new version;
- every --sample-every seconds, the RSS (VmRSS) and open fd count of every process of the stack, from /proc, read
  with the traffic paused for a moment (each client finishes its request and waits), so no request is in flight.

It fails (exit 1) on:
- a 5xx (or any non-200, or a transport error) that no fault explains: a failed request is explained when its time
  in flight overlaps [fault, fault + --window] for a fault on the same function;
- a 200 with a wrong body;
- a process whose RSS at its last sample is over its baseline by more than 10 % + --rss-slack-mib, or whose fd count
  rose (the lowest count over its last samples above the highest over its first, see judge_fds; the sockets that
  carry requests in nginx and function workers are held to what the traffic can open instead, see socket_bounds);
  the baseline is the first sample taken after the warm-up and once the process is --proc-warmup seconds old, so a
  worker restarted by a fault gets its own. The absolute slack (2 MiB) is there because 10 % of the small processes (the Go worker and the
  supervisor, 7-8 MiB) is under one allocator step: Go's heap grows by GC pacing in MiB steps, glibc's malloc
  and Python's arenas by 128 KiB-1 MiB; a one-off step is not growth, while a per-request leak of a few hundred
  bytes over a run's ~10,000 requests per worker still exceeds it;
- a killed worker not replaced, or an edit not served, within 15 s;
- a `soak-line <n>` whose request got a 200 and that is missing from the function's log (rotations included) after
  the stack stopped;
- a process of the stack still alive after it stopped.

The summary (markdown) is printed and written to --out.
"""

import argparse
import datetime
import http.client
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FUNCTIONS = os.path.join(HERE, "functions")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

ECHO_BODY = json.dumps({"items": [{"id": i, "name": f"user-{i:03d}"} for i in range(16)]})
ECHO_EXPECTED = json.loads(ECHO_BODY)

# Functions whose worker the kill fault takes in turn (Lua runs inside nginx: no worker of its own).
KILL_ORDER = ["soak-echo", "soak-py", "soak-node", "soak-php", "soak-go", "soak-log", "soak-edit"]
EDITED = "soak-edit"
LOGGED = "soak-log"


def fastfn_bin():
    return os.path.join(ROOT, "target", "release", "fastfn")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------- requests

class Endpoint:
    def __init__(self, function, method, check, body=None):
        self.function = function
        self.method = method
        self.check = check  # parsed JSON body -> bool
        self.body = body

    @property
    def path(self):
        return "/" + self.function


def hello(runtime):
    return lambda answer: answer == {"hello": "world", "runtime": runtime}


ENDPOINTS = [
    Endpoint("soak-py", "GET", hello("python")),
    Endpoint("soak-node", "GET", hello("node")),
    Endpoint("soak-php", "GET", hello("php")),
    Endpoint("soak-go", "GET", hello("go")),
    Endpoint("soak-lua", "GET", hello("lua")),
    Endpoint(LOGGED, "GET", None),  # checked against its n
    Endpoint("soak-echo", "POST", lambda answer: answer == {"echo": ECHO_EXPECTED}, ECHO_BODY),
    Endpoint(EDITED, "GET", lambda answer: isinstance(answer, dict) and isinstance(answer.get("version"), int)),
]


class PathStats:
    def __init__(self):
        self.statuses = {}
        self.latencies = []
        self.failures = []  # (start, end, status or error text, body excerpt)
        self.bad_bodies = []
        self.keepalive_retries = 0

    def merge(self, other):
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.latencies += other.latencies
        self.failures += other.failures
        self.bad_bodies += other.bad_bodies
        self.keepalive_retries += other.keepalive_retries


class Client(threading.Thread):
    """Sends its share of the traffic, paced, cycling over every endpoint, on one keep-alive connection."""

    def __init__(self, soak, index, rate):
        super().__init__(name=f"client-{index}", daemon=True)
        self.soak = soak
        self.index = index
        self.interval = 1.0 / rate
        self.stats = {e.path: PathStats() for e in ENDPOINTS}
        self.logged_ok = []  # n of every soak-line request answered 200
        self.conn = None

    def run(self):
        order = itertools.cycle(ENDPOINTS[self.index % len(ENDPOINTS):] + ENDPOINTS[:self.index % len(ENDPOINTS)])
        next_at = time.monotonic()
        while not self.soak.stopping.is_set():
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                if self.soak.stopping.wait(delay):
                    break
            elif delay < -1.0:
                next_at = time.monotonic()  # fell behind (a slow answer): no burst to catch up
            if not self.soak.running.is_set():
                self.soak.hold()  # a resource sample is being taken: nothing in flight meanwhile
                next_at = time.monotonic()
            self.one(next(order))
        if self.conn:
            self.conn.close()

    def one(self, endpoint):
        stats = self.stats[endpoint.path]
        path = endpoint.path
        n = None
        if endpoint.function == LOGGED:
            n = next(self.soak.line_numbers)
            path += f"?n={n}"
        headers = {"Content-Type": "application/json"} if endpoint.body else {}
        start = time.monotonic()
        for attempt in range(2):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.soak.port, timeout=15)
            try:
                self.conn.request(endpoint.method, path, body=endpoint.body, headers=headers)
                response = self.conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as e:
                self.conn.close()
                self.conn = None
                if not fresh and attempt == 0:
                    # The server closed an idle keep-alive connection as we reused it (an nginx worker replaced
                    # by a reload does): every HTTP client retries that once on a new connection.
                    stats.keepalive_retries += 1
                    continue
                end = time.monotonic()
                stats.statuses["error"] = stats.statuses.get("error", 0) + 1
                stats.failures.append((start, end, f"{type(e).__name__}: {e}", ""))
                return
            break
        end = time.monotonic()
        if response.will_close:
            self.conn.close()
            self.conn = None
        status = response.status
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        stats.latencies.append(end - start)
        if status != 200:
            stats.failures.append((start, end, status, body[:200].decode("utf-8", "replace")))
            return
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if endpoint.function == LOGGED:
            ok = answer == {"logged": str(n)}
            if ok:
                self.logged_ok.append(n)
        else:
            ok = endpoint.check(answer)
        if not ok:
            stats.bad_bodies.append((start, body[:200].decode("utf-8", "replace")))
        elif endpoint.function == EDITED:
            self.soak.saw_version(answer["version"], end)


# ---------------------------------------------------------------------------------------------------------- processes

def proc_start_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def system_uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def unix_inodes():
    """Inodes of every Unix-domain socket (this network namespace)."""
    inodes = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 7:
                inodes.add(fields[6])
    return inodes


def fd_count(pid, unix):
    """Open fds of a process, and how many of them are Unix sockets, other sockets, pipes, other anonymous inodes
    and files."""
    kinds = {"unix": 0, "socket": 0, "pipe": 0, "anon": 0, "file": 0}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None, None
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        kind = ("unix" if target[8:-1] in unix else "socket") if target.startswith("socket:") else "pipe" if target.startswith("pipe:") else \
            "anon" if target.startswith("anon_inode:") else "file"
        kinds[kind] += 1
    return len(names), kinds


class Process:
    def __init__(self, role, pid, start_ticks):
        self.role = role
        self.pid = pid
        self.start_ticks = start_ticks
        self.samples = []  # (monotonic time, age s, rss KiB, fds, fd kinds)
        self.gone_at = None

    def baseline(self, after, min_age):
        for sample in self.samples:
            if sample[0] >= after and sample[1] >= min_age:
                return sample
        return None


class Stack:
    """`fastfn dev --native` on a copy of tests/soak/functions, on a free port, in a private run dir."""

    def __init__(self, work, log_max_bytes):
        self.work = work
        self.functions = os.path.join(work, "functions")
        shutil.copytree(FUNCTIONS, self.functions)
        for dirpath, dirnames, filenames in os.walk(self.functions):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        self.port = free_port()
        self.run_base = os.path.join(work, "run")
        self.ready_file = os.path.join(work, "ready.json")
        self.stderr_path = os.path.join(work, "fastfn.stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        env = dict(os.environ, FN_LOG_MAX_BYTES=str(log_max_bytes))
        env.pop("FN_HOT_RELOAD", None)
        self.proc = subprocess.Popen(
            [fastfn_bin(), "dev", "--native", self.functions, "--listen", f"127.0.0.1:{self.port}",
             "--run-dir", self.run_base, "--ready-file", self.ready_file],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.ready = None

    def wait_ready(self, limit=180):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if os.path.exists(self.ready_file) and os.path.getsize(self.ready_file) > 0:
                with open(self.ready_file) as f:
                    self.ready = json.load(f)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"fastfn did not become ready; its stderr:\n{self.tail_stderr()}")

    def tail_stderr(self, lines=40):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def status(self):
        out = subprocess.run([fastfn_bin(), "status", "--json", "--listen", f"127.0.0.1:{self.port}",
                              "--run-dir", self.run_base], capture_output=True, text=True, timeout=20)
        return json.loads(out.stdout)

    def stop(self, grace=40):
        """SIGTERM to the supervisor and wait; SIGKILL if it outlives the grace. Returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


def processes_of(status):
    """(role, pid) of every process of the stack in a status snapshot."""
    out = [("supervisor", status["pid"]), ("nginx master", status["nginx"]["pid"])]
    out += [("nginx worker", w["pid"]) for w in status["nginx"].get("workers", [])]
    for function in status["functions"]:
        for p in function.get("processes", []):
            out.append((f"{function_folder(function)} worker", p["pid"]))
    return [(role, pid) for role, pid in out if pid]


def function_folder(function):
    return function["name"].split("/")[0]


# ---------------------------------------------------------------------------------------------------------- the soak

class Soak:
    def __init__(self, args):
        self.args = args
        self.stopping = threading.Event()
        self.line_numbers = itertools.count(1)
        self.lock = threading.Lock()
        self.versions_seen = {}  # version -> first monotonic time a client saw it
        self.processes = {}  # (pid, start ticks) -> Process
        self.faults = []  # dicts: t, kind, function, detail
        self.problems = []  # failures that are not per request
        self.kill_latencies = []
        self.edit_latencies = []
        self.statuses_sampled = 0
        self.port = None
        # Resource samples are read with the traffic paused (no request in flight), so in-flight connections do
        # not count as fds: `running` is cleared, each client waits in hold(), the sampler waits for all of them.
        self.running = threading.Event()
        self.running.set()
        self.held = 0
        self.clients = 0
        self.pauses = []
        self.fn_workers = 0

    def hold(self):
        with self.lock:
            self.held += 1
        self.running.wait()
        with self.lock:
            self.held -= 1

    def saw_version(self, version, when):
        with self.lock:
            self.versions_seen.setdefault(version, when)

    # -- sampling

    def sample(self, stack):
        try:
            status = stack.status()
        except (subprocess.SubprocessError, ValueError, OSError) as e:
            self.problems.append(f"{self.clock():.0f} s: `fastfn status --json` failed: {e}")
            return None
        self.statuses_sampled += 1
        paused = time.monotonic()
        self.running.clear()
        try:
            deadline = paused + 5
            while time.monotonic() < deadline:
                with self.lock:
                    if self.held >= self.clients:
                        break
                time.sleep(0.002)
            time.sleep(0.05)  # the last answers' connections settle (nginx pools them, the supervisor's status peer goes)
            now = time.monotonic()
            uptime = system_uptime()
            unix = unix_inodes()
            self.fn_workers = sum(len(f.get("processes", [])) for f in status["functions"])
            alive = set()
            for role, pid in processes_of(status):
                ticks = proc_start_ticks(pid)
                if ticks is None:
                    continue
                key = (pid, ticks)
                alive.add(key)
                process = self.processes.get(key)
                if process is None:
                    process = self.processes[key] = Process(role, pid, ticks)
                rss, (fds, kinds) = rss_kib(pid), fd_count(pid, unix)
                if rss is not None and fds is not None:
                    process.samples.append((now, uptime - ticks / CLOCK_TICKS, rss, fds, kinds))
        finally:
            self.running.set()
            self.pauses.append(time.monotonic() - paused)
        for key, process in self.processes.items():
            if key not in alive and process.gone_at is None:
                process.gone_at = now
        return status

    def clock(self):
        return time.monotonic() - self.t0

    # -- faults

    def kill_one(self, stack, function):
        status = self.sample(stack)
        if status is None:
            return
        pids = [p["pid"] for f in status["functions"] if function_folder(f) == function for p in f.get("processes", [])]
        if not pids:
            self.problems.append(f"{self.clock():.0f} s: no running worker of {function} to kill")
            return
        pid = random.choice(pids)
        t = time.monotonic()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.faults.append({"t": t, "kind": "kill", "function": function, "detail": f"pid {pid}"})
        # The warm worker must be back (a new pid, running) within 15 s.
        deadline = t + 15
        while time.monotonic() < deadline and not self.stopping.is_set():
            time.sleep(0.1)
            try:
                status = stack.status()
            except (subprocess.SubprocessError, ValueError, OSError):
                continue
            fresh = [p["pid"] for f in status["functions"] if function_folder(f) == function
                     for p in f.get("processes", []) if p["pid"] != pid]
            if fresh:
                self.kill_latencies.append(time.monotonic() - t)
                return
        if not self.stopping.is_set():
            self.problems.append(f"{self.clock():.0f} s: {function}'s worker (pid {pid}) killed and not replaced within 15 s")

    def edit(self, stack, number):
        path = os.path.join(stack.functions, EDITED, "handler.py")
        text = ("# Rewritten by the soak at every hot-reload fault: VERSION is the number of the edit.\n"
                f"VERSION = {number}\n\n\ndef handler(event):\n    return {{\"version\": VERSION}}\n")
        in_place = number % 2 == 1
        t = time.monotonic()
        if in_place:
            with open(path, "w") as f:
                f.write(text)
        else:
            tmp = os.path.join(os.path.dirname(path), ".handler.py.soak-tmp")  # a dotfile: the watcher ignores it
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        self.faults.append({"t": t, "kind": "edit", "function": EDITED,
                            "detail": f"version {number} ({'in place' if in_place else 'by rename'})"})
        deadline = t + 15
        while time.monotonic() < deadline and not self.stopping.is_set():
            with self.lock:
                seen = self.versions_seen.get(number)
            if seen is not None:
                self.edit_latencies.append(seen - t)
                return
            time.sleep(0.02)
        if not self.stopping.is_set():
            self.problems.append(f"{self.clock():.0f} s: edit to version {number} not served within 15 s")

    # -- the run

    def run(self):
        args = self.args
        work = tempfile.mkdtemp(prefix="fastfn-soak-")
        os.chmod(work, 0o755)  # as root, nginx's and the workers' users must get through to the run dir
        print(f"soak: work dir {work}", flush=True)
        duration = args.minutes * 60
        warmup = args.warmup if args.warmup is not None else min(max(60.0, duration * 0.1), duration / 3)
        # Log rotation is exercised, but the live file plus its three rotations must hold every line of the run.
        expected_log_bytes = args.rate / len(ENDPOINTS) * duration * 80
        log_max_bytes = max(4096, min(16 << 20, int(expected_log_bytes / 2.5)))
        stack = Stack(work, log_max_bytes)
        self.port = stack.port
        clients = []
        stopped_cleanly = None
        try:
            stack.wait_ready()
            print(f"soak: ready on {stack.ready['url']}; {duration:.0f} s of traffic at {args.rate} req/s over "
                  f"{args.threads} connections, warm-up {warmup:.0f} s, a fault every {args.fault_every:.0f} s", flush=True)
            self.t0 = time.monotonic()
            clients = [Client(self, i, args.rate / args.threads) for i in range(args.threads)]
            self.clients = len(clients)
            for c in clients:
                c.start()
            end = self.t0 + duration
            next_sample = self.t0
            next_fault = self.t0 + min(args.fault_every, warmup / 2)
            fault_no = 0
            edits = 0
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_sample:
                    self.sample(stack)
                    next_sample += args.sample_every
                if now >= next_fault and now < end - 5:
                    if fault_no % 2 == 0:
                        self.kill_one(stack, KILL_ORDER[(fault_no // 2) % len(KILL_ORDER)])
                    else:
                        edits += 1
                        self.edit(stack, edits)
                    fault_no += 1
                    next_fault += args.fault_every
                    elapsed = self.clock()
                    print(f"soak: {elapsed:5.0f} s  {self.faults[-1]['kind']} {self.faults[-1]['function']} "
                          f"{self.faults[-1]['detail']}  requests so far {self.requests_so_far(clients)}", flush=True)
                time.sleep(max(0.0, min(next_sample, next_fault, end) - time.monotonic()))
            self.sample(stack)
            last_status = self.sample(stack)
            self.t_end = time.monotonic()
        finally:
            self.stopping.set()
            self.running.set()
            for c in clients:
                c.join(30)
            code = stack.stop()
            stopped_cleanly = code == 0
        # Nothing of the stack may outlive it.
        time.sleep(0.5)
        survivors = [p for p in self.processes.values() if p.gone_at is None and proc_start_ticks(p.pid) == p.start_ticks]
        for p in survivors:
            self.problems.append(f"{p.role} pid {p.pid} still alive after the stack stopped")
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not stopped_cleanly:
            self.problems.append(f"fastfn exited with {code} on SIGTERM, not 0")
        stats = {e.path: PathStats() for e in ENDPOINTS}
        logged_ok = []
        for c in clients:
            for path, s in c.stats.items():
                stats[path].merge(s)
            logged_ok += c.logged_ok
        log_check = self.check_log_lines(stack.ready["run_dir"], logged_ok)
        report, failed = self.render(stats, log_check, warmup, log_max_bytes, last_status)
        print(report)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)
        print(f"soak: summary written to {args.out}", flush=True)
        if failed or args.keep:
            print(f"soak: work dir kept: {work} (fastfn's stderr: {stack.stderr_path})", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
        return 1 if failed else 0

    def requests_so_far(self, clients):
        return sum(sum(s.statuses.values()) for c in clients for s in c.stats.values())

    # -- checks

    def check_log_lines(self, run_dir, logged_ok):
        logs = os.path.join(run_dir, "logs", "processes")
        files = sorted(f for f in os.listdir(logs) if f.startswith(f"fn_{LOGGED}") and re.search(r"\.log(\.\d+)?$", f))
        found = set()
        for name in files:
            with open(os.path.join(logs, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.search(r"soak-line (\d+)$", line.rstrip("\n"))
                    if m:
                        found.add(int(m.group(1)))
        combined = set()
        combined_files = sorted(f for f in os.listdir(os.path.join(run_dir, "logs")) if re.match(r"runtime\.log(\.\d+)?$", f))
        for name in combined_files:
            with open(os.path.join(run_dir, "logs", name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.search(rf"^\[fn:{LOGGED}/[^\]]*\] .*soak-line (\d+)$", line.rstrip("\n"))
                    if m:
                        combined.add(int(m.group(1)))
        missing = sorted(set(logged_ok) - found)
        return {"checked": len(logged_ok), "missing": missing, "files": files,
                "missing_combined": sorted(set(logged_ok) - combined), "combined_files": combined_files}

    def explained(self, function, start, end):
        for f in self.faults:
            if f["function"] == function and start <= f["t"] + self.args.window and end >= f["t"]:
                return f
        return None

    def render(self, stats, log_check, warmup, log_max_bytes, last_status):
        args = self.args
        failed = bool(self.problems)
        rel = lambda t: t - self.t0  # noqa: E731
        lines = [f"# fastfn soak ({datetime.datetime.now().strftime('%Y-%m-%d %H:%M')})", ""]
        lines += [f"`tests/soak/run.sh --minutes {args.minutes:g}`: `fastfn dev --native` (release build, hot reload on) on "
                  f"tests/soak/functions; {args.threads} keep-alive clients at {args.rate} req/s in all, cycling over "
                  f"{len(ENDPOINTS)} functions; a fault every {args.fault_every:g} s, alternating a SIGKILL of one function "
                  f"worker and a hot-reload edit of {EDITED}; RSS and fds of every process every {args.sample_every:g} s; "
                  f"RSS and fds read with the traffic paused (no request in flight; median pause "
                  f"{statistics.median(self.pauses) * 1000:.0f} ms, max {max(self.pauses) * 1000:.0f} ms); "
                  f"warm-up {warmup:.0f} s; FN_LOG_MAX_BYTES={log_max_bytes}. "
                  f"A failed request is explained when it was in flight within {args.window:g} s after a fault on its function.",
                  "", "Machine: " + machine(), ""]
        # Requests.
        lines += ["| path | requests | 200 | 5xx explained | 5xx unexplained | other non-200 / transport errors | "
                  "keep-alive retries | wrong bodies | p50 | p99 | max |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        unexplained = []
        totals = [0, 0, 0, 0, 0, 0, 0]
        for e in ENDPOINTS:
            s = stats[e.path]
            total = sum(s.statuses.values())
            ok = s.statuses.get(200, 0)
            exp5 = unexp5 = other = 0
            for start, end, status, body in s.failures:
                fault = self.explained(e.function, start, end)
                is5xx = isinstance(status, int) and 500 <= status < 600
                if fault is None:
                    unexplained.append(f"{rel(start):.2f}–{rel(end):.2f} s {e.method} {e.path}: {status} {body}")
                    if is5xx:
                        unexp5 += 1
                    else:
                        other += 1
                elif is5xx:
                    exp5 += 1
                else:
                    other += 1
            lat = sorted(s.latencies)
            pct = lambda q: f"{lat[min(len(lat) - 1, int(q * len(lat)))] * 1000:.1f} ms" if lat else "—"  # noqa: E731
            lines.append(f"| {e.method} {e.path} | {total} | {ok} | {exp5} | {unexp5} | {other} | {s.keepalive_retries} | "
                         f"{len(s.bad_bodies)} | {pct(0.5)} | {pct(0.99)} | {pct(1.0)} |")
            for row, v in enumerate([total, ok, exp5, unexp5, other, s.keepalive_retries, len(s.bad_bodies)]):
                totals[row] += v
            for start, body in s.bad_bodies[:5]:
                unexplained.append(f"{rel(start):.2f} s {e.method} {e.path}: 200 with a wrong body: {body}")
        lines.append(f"| all | {' | '.join(str(v) for v in totals)} | | | |")
        seconds = self.t_end - self.t0
        lines += ["", f"{totals[0]} requests in {seconds:.0f} s ({totals[0] / seconds:.0f} req/s)."]
        if unexplained or totals[6]:
            failed = True
            lines += ["", "Unexplained failures (first 30):", ""] + [f"- {u}" for u in unexplained[:30]]
        # Faults.
        kills = [f for f in self.faults if f["kind"] == "kill"]
        edits = [f for f in self.faults if f["kind"] == "edit"]
        per_fn = {}
        for f in kills:
            per_fn[f["function"]] = per_fn.get(f["function"], 0) + 1

        def spread(xs):
            if not xs:
                return "—"
            return f"median {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"
        lines += ["", f"Faults: {len(self.faults)} — {len(kills)} worker kills "
                  f"({', '.join(f'{k} {v}' for k, v in per_fn.items())}), replaced in {spread(self.kill_latencies)}; "
                  f"{len(edits)} hot-reload edits of {EDITED}, served by clients after {spread(self.edit_latencies)}."]
        if last_status is not None:
            restarts = {function_folder(f): f.get("restarts", 0) for f in last_status["functions"] if f.get("restarts")}
            lines += [f"Restarts the supervisor counted at the end: {restarts or 'none'}; nginx master restarts "
                      f"{last_status['nginx'].get('restarts', 0)}."]
        # Resources.
        lines += ["", "| process | pid | lived (s) | samples after baseline | RSS baseline → last | growth | fds baseline → last (range) | verdict |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        unjudged = {}
        for p in sorted(self.processes.values(), key=lambda p: (role_order(p.role), p.samples[0][0] if p.samples else 0)):
            base = p.baseline(self.t0 + warmup, args.proc_warmup)
            after = [s for s in p.samples if base and s[0] > base[0]]
            if base is None or not after:
                unjudged[p.role] = unjudged.get(p.role, 0) + 1
                continue
            last = after[-1]
            limit = base[2] * 1.10 + args.rss_slack_mib * 1024
            rss_ok = last[2] <= limit
            fd_ok, fd_text = judge_fds(p.samples[p.samples.index(base):], socket_bounds(p.role, args.threads, self.fn_workers))
            verdict = "ok" if rss_ok and fd_ok else "**FAIL**"
            if not (rss_ok and fd_ok):
                failed = True
            lived = (p.gone_at or self.t_end) - p.samples[0][0] + p.samples[0][1]
            lines.append(f"| {p.role} | {p.pid} | {lived:.0f} | {len(after)} | {base[2] / 1024:.1f} → {last[2] / 1024:.1f} MiB | "
                         f"{(last[2] - base[2]) / base[2] * 100:+.1f} % | {fd_text} | {verdict} |")
        if unjudged:
            lines += ["", "Not judged (gone before they had a baseline and a later sample): "
                      + ", ".join(f"{n} {role}" for role, n in unjudged.items()) + "."]
        # Log lines.
        missing = log_check["missing"]
        lines += ["", f"Log lines: {log_check['checked']} `soak-line <n>` answered 200, {len(missing)} missing from "
                  f"{LOGGED}'s own log ({', '.join(log_check['files']) or 'no file'}), "
                  f"{len(log_check['missing_combined'])} missing from runtime.log ({', '.join(log_check['combined_files'])})."]
        if missing or log_check["missing_combined"] or not log_check["checked"]:
            failed = True
            lines.append(f"Missing (first 20): {missing[:20]} / runtime.log: {log_check['missing_combined'][:20]}")
        if self.problems:
            lines += ["", "Problems:", ""] + [f"- {p}" for p in self.problems]
        lines += ["", f"Result: {'**FAIL**' if failed else 'pass'}.", ""]
        return "\n".join(lines), failed


def socket_bounds(role, threads, fn_workers):
    """For the processes in the request path, the sockets that carry requests move with the traffic, even with no
    request in flight: nginx keeps at most 1000 requests on a client connection (the client then reconnects, to
    either nginx worker), and the gateway's keep-alive pool keeps, per function worker socket, as many idle
    connections as requests were ever in flight to it at once (dropped after 60 s idle, closed when either end
    goes). Those are held to what the traffic can open instead of to their baseline: an nginx worker's TCP sockets
    (its listener, the clients' connections), its Unix sockets (the pool to every function worker, its channel to
    the master), a function worker's sockets (its listener, the pooled connections of the nginx workers, two
    generations of them around a reload). None for the supervisor and nginx's master: not in the request path."""
    if role == "nginx worker":
        return {"socket": threads + 2, "unix": threads * fn_workers + 2}
    if role.endswith(" worker"):
        return {"unix": 2 * threads + 1}
    return None


def judge_fds(samples, bounds=None):
    """Samples are read with no request in flight, so the count should not move at all; a leak is a rise that stays:
    the lowest count over the last third of the samples (at least one) above the highest over the first third.
    The sockets named in bounds are left out of that and must stay within their bound instead."""
    bounds = bounds or {}
    counts = [s[3] - sum(s[4][kind] for kind in bounds) for s in samples]
    k = max(1, len(counts) // 3)
    first_max, last_min = max(counts[:k]), min(counts[-k:])
    ok = last_min <= first_max
    text = f"{counts[0]} → {counts[-1]}" + ("" if min(counts) == max(counts) else f" (range {min(counts)}–{max(counts)})")
    for kind, bound in bounds.items():
        series = [s[4][kind] for s in samples]
        ok = ok and max(series) <= bound
        text += f" + {'Unix' if kind == 'unix' else 'TCP'} sockets {series[0]} → {series[-1]} (max {max(series)} ≤ {bound})"
    if not ok:
        kinds = lambda k: ", ".join(f"{n} {kind}" for kind, n in k.items() if n)  # noqa: E731
        text += f": {kinds(samples[0][4])} → {kinds(samples[-1][4])}; series {counts}"
    return ok, text


def role_order(role):
    return {"supervisor": 0, "nginx master": 1, "nginx worker": 2}.get(role, 3), role


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return f"{os.cpu_count()} CPUs ({model}), {mem_kib / 1024 / 1024:.1f} GiB, Linux {platform.release()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="length of the traffic (default 10)")
    parser.add_argument("--rate", type=float, default=300, help="requests per second, all clients together (default 300)")
    parser.add_argument("--threads", type=int, default=4, help="client connections (default 4)")
    parser.add_argument("--fault-every", type=float, default=20, help="seconds between faults (default 20)")
    parser.add_argument("--window", type=float, default=2, help="seconds after a fault that explain a failed request (default 2)")
    parser.add_argument("--sample-every", type=float, default=5, help="seconds between resource samples (default 5)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before baselines (default 10 %% of the run, 60 to a third of it)")
    parser.add_argument("--proc-warmup", type=float, default=15, help="age a process must reach before its baseline (default 15)")
    parser.add_argument("--rss-slack-mib", type=float, default=2, help="absolute RSS growth allowed on top of 10 %% (default 2)")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "soak", "summary.md"), help="where the summary goes")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (functions, run dir, logs) even on success")
    args = parser.parse_args()
    if not os.access(fastfn_bin(), os.X_OK):
        sys.exit(f"{fastfn_bin()} is missing: run tests/soak/run.sh (it builds it)")
    sys.exit(Soak(args).run())


if __name__ == "__main__":
    main()
