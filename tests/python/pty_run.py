"""Runs a command on a pseudo-terminal, as an operator at a terminal would, and types one answer.

Usage: python pty_run.py PROMPT COMMAND [ARGS...]; the answer comes from the PTY_ANSWER
environment variable (so it is not in any argv). Waits until PROMPT appears in the output (and,
with PTY_SECRET=1, until the command has switched the terminal's echo off, as a person would
only start typing once the prompt is there), types the answer and Enter, then prints
everything the terminal showed and exits with the command's exit code.
"""

import os
import pty
import signal
import sys
import termios
import time

signal.alarm(60)  # never hang a test run, whatever the command does

prompt = sys.argv[1].encode()
secret = os.environ.get("PTY_SECRET") == "1"
answer = os.environ.pop("PTY_ANSWER").encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
shown = b""
answered = False
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:  # EIO: the command exited and closed the terminal
        break
    if not chunk:
        break
    shown += chunk
    if not answered and prompt in shown:
        deadline = time.monotonic() + 10
        while secret and termios.tcgetattr(fd)[3] & termios.ECHO:
            if time.monotonic() > deadline:
                sys.exit("the command never switched echo off")
            time.sleep(0.01)
        os.write(fd, answer + b"\n")
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(shown.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
