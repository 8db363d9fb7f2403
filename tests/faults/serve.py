"""Serves the fault tests' web app from forks of one process that imported it already.

Importing the app takes a few seconds of CPU (15 s of wall time on a busy CI machine), and a
test that kills the server again and again would spend its time importing. So this process
imports it once, then for each "serve" line on stdin forks a child that runs uvicorn on the
port given in argv (logging to the file given after it), and prints the child's pid. The child
is the web process: it is what the tests kill with SIGKILL, and each one starts from the same
fresh, unconnected state (no database connection is opened before the fork), like a server
started anew. EOF on stdin ends it."""

from __future__ import annotations

import os
import signal
import sys

import uvicorn

from tests.faults.asgi_app import app


def main() -> None:
    port, log = int(sys.argv[1]), sys.argv[2]
    # Children are reaped by the kernel, so a killed one never lingers as a zombie on the port.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "serve":
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # The pipe to the test carries pids only; the server's own output goes to the log.
            handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(handle, 1)
            os.dup2(handle, 2)
            uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
            os._exit(0)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
