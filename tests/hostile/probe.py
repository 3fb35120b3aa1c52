# A hostile handler: each request tries one forbidden thing (?try=NAME) and reports what the kernel answered.
import ctypes
import errno
import os
import resource

libc = ctypes.CDLL(None, use_errno=True)
SYS = {"ptrace": 101, "unshare": 272, "io_uring_setup": 425, "mount": 165, "bpf": 321, "keyctl": 250, "setns": 308}
CLONE_NEWUSER = 0x10000000


def syscall(nr, *args):
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 0 if rc != -1 else ctypes.get_errno()


def errname(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))


def fs_attempt(name, path):
    try:
        if name == "read":
            with open(path, "rb") as f:
                return "read %d bytes" % len(f.read())
        if name == "read_bytes_path":
            with open(os.fsencode(path), "rb") as f:
                return "read %d bytes" % len(f.read())
        if name == "list":
            return "listed %d entries" % len(os.listdir(path))
        if name == "write":
            with open(path, "w") as f:
                f.write("pwned")
            return "written"
        if name == "symlink":
            link = os.path.join(os.environ["TMPDIR"], "planted")
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(path, link)
            with open(link, "rb") as f:
                return "read %d bytes" % len(f.read())
        if name == "exec":
            import subprocess
            return subprocess.run([path], capture_output=True, timeout=5).stdout.decode()
        if name == "connect":
            import socket
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            return "connected"
    except OSError as exc:
        return errname(exc)
    return "unknown attempt"


def attempt(name):
    if name == "ptrace":
        return syscall(SYS["ptrace"], 16, os.getppid(), 0, 0)  # PTRACE_ATTACH to the supervisor
    if name == "unshare":
        return syscall(SYS["unshare"], CLONE_NEWUSER)
    if name == "io_uring":
        return syscall(SYS["io_uring_setup"], 1, 0)
    if name == "mount":
        return syscall(SYS["mount"], 0, 0, 0, 0, 0)
    if name == "bpf":
        return syscall(SYS["bpf"], 0, 0, 0)
    if name == "keyctl":
        return syscall(SYS["keyctl"], 0, 0, 0, 0, 0)
    if name == "memory":
        try:
            block = bytearray(4 * 1024 * 1024 * 1024)
            return len(block)
        except MemoryError:
            return "MemoryError"
    if name == "files":
        opened = []
        try:
            while len(opened) < 100000:
                opened.append(open(os.devnull))
            return "no limit"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, exc.errno)
        finally:
            for f in opened:
                f.close()
    if name == "filesize":
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "big")
        try:
            with open(path, "wb") as f:
                f.write(b"x" * (3 * 1024 * 1024))
            return "written"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, exc.errno)
        finally:
            if os.path.exists(path):
                os.remove(path)
    if name == "forks":
        pids = []
        try:
            while len(pids) < 5000:
                pid = os.fork()
                if pid == 0:
                    import time
                    time.sleep(3)
                    os._exit(0)
                pids.append(pid)
            return "no limit"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, exc.errno)
        finally:
            for pid in pids:
                try:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
    if name == "identity":
        dumpable = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        limits = {n: resource.getrlimit(getattr(resource, n)) for n in ("RLIMIT_DATA", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_FSIZE")}
        status = open("/proc/self/status").read()
        return {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "dumpable": dumpable,
            "no_new_privs": [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0],
            "seccomp": [l.split()[1] for l in status.splitlines() if l.startswith("Seccomp:")][0],
            "limits": limits,
            "env": dict(os.environ),
            "sid_is_self": os.getsid(0) == os.getpid(),
            "ppid": os.getppid(),
            "tmp": os.environ.get("TMPDIR"),
            "cwd": os.getcwd(),
        }
    return "unknown attempt"


def handler(event):
    query = event["query"]
    if "path" in query:
        return {"result": fs_attempt(query.get("try", ""), query["path"])}
    return {"result": attempt(query.get("try", ""))}
