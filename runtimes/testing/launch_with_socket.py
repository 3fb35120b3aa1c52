#!/usr/bin/env python3
"""Test helper: do what the supervisor does before it starts a worker, then exec the worker.

    launch_with_socket.py <socket path> -- <program> [args...]

Binds a listening unix socket at <socket path> (mode 0600; an existing file there is replaced), puts it on fd 3,
sets FN_WORKER_LISTEN_FD=3 unless already set, and execs <program>. The caller is ready to talk once the worker
answers a ping on the socket.
"""

import os
import socket
import sys


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: launch_with_socket.py <socket path> -- <program> [args...]\n")
        return 2
    path, program = argv[1], argv[3:]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600 from the start, as the supervisor does
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(128)
    if listener.fileno() != 3:
        os.dup2(listener.fileno(), 3)  # dup2 clears close-on-exec on the copy; the original closes at exec
    else:
        os.set_inheritable(3, True)
    os.environ.setdefault("FN_WORKER_LISTEN_FD", "3")
    os.execvp(program[0], program)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
