"""Run a command (inheriting the terminal) and record its pid, exit time and rusage.

    python bench/_rusage.py OUT.json -- COMMAND...

Used by run.py inside tmux, where the benchmark is not the command's parent: writes
OUT.json.pid (pid and CLOCK_MONOTONIC launch time) at once, and OUT.json (exit status,
CLOCK_MONOTONIC exit time, user/sys CPU seconds, peak RSS in KiB) when the command ends.
CLOCK_MONOTONIC is system-wide, so these times compare with the benchmark's own.
"""

import json
import os
import subprocess
import sys
import time

out = sys.argv[1]
argv = sys.argv[sys.argv.index("--") + 1:]
t0 = time.monotonic()
p = subprocess.Popen(argv)
with open(out + ".pid.tmp", "w") as f:
    json.dump({"pid": p.pid, "t_launch": t0}, f)
os.replace(out + ".pid.tmp", out + ".pid")
_, status, ru = os.wait4(p.pid, 0)
t1 = time.monotonic()
with open(out + ".tmp", "w") as f:
    json.dump({"status": os.waitstatus_to_exitcode(status), "t_exit": t1, "t_launch": t0,
               "user": ru.ru_utime, "sys": ru.ru_stime, "maxrss_kib": ru.ru_maxrss}, f)
os.replace(out + ".tmp", out)
