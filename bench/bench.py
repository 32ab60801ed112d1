#!/usr/bin/env python3
"""taskmaster's benchmark: the same scenarios against taskmaster and supervisord in one run.

    python3 bench/bench.py              # full run (builds taskmaster in release mode, installs
                                        # supervisord into bench/.venv)
    python3 bench/bench.py --quick      # small sizes, under a minute
    python3 bench/bench.py --only taskmaster --quick   # what CI runs: no supervisord needed

Prints one table (scenario, subject, median, min, max, n, unit, ratios) and writes the raw
samples to bench/results.json. Every scenario runs on a fresh daemon in its own scratch
directory on tmpfs, checks that the work was really done, and cleans up by pid.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
SUPERVISOR_VERSION = "4.3.0"
MIB = 1 << 20


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def wait_for(what, timeout, cond, interval=0.0005):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def file_total(path, backups):
    """Bytes in the file and its backups. Read oldest first: a rotation while reading can then
    only make the total too small, never too large, so waiting for >= size cannot end early.
    One directory scan per call keeps the poller's own cost low on a 2-core machine."""
    path = Path(path)
    names = {e.name for e in os.scandir(path.parent)}
    total = 0
    for n in range(backups, -1, -1):
        name = f"{path.name}.{n}" if n else path.name
        if name in names:
            try:
                total += os.stat(path.parent / name).st_size
            except FileNotFoundError:
                pass
    return total


def scratch():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = Path(tempfile.mkdtemp(prefix="tm-bench-", dir=base))
    d.chmod(0o755)
    return d


def kill_tree(proc, timeout=20):
    """Ends a daemon by its pid: SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- subjects


class Taskmaster:
    name = "taskmaster"

    def __init__(self):
        sh(["cargo", "build", "--release", "--bin", "taskmasterd", "--bin", "taskmasterctl"], cwd=ROOT)
        self.bin = ROOT / "target" / "release"

    def start(self, d, programs):
        """programs: name -> dict(command, numprocs, autostart, startsecs, stdout, maxbytes, backups)."""
        lines = [f"server:\n  logfile: {d}/log/taskmasterd.log\nsocket:\n  path: {d}/tm.sock\nprograms:"]
        for name, p in programs.items():
            lines.append(
                f"  {name}:\n    command: {json.dumps(p['command'])}\n    numprocs: {p.get('numprocs', 1)}\n"
                f"    autostart: {str(p.get('autostart', True)).lower()}\n    startsecs: {p.get('startsecs', 0)}\n"
                f"    autorestart: {p.get('autorestart', 'never')}\n"
                f"    stdout_logfile: {p.get('stdout', 'NONE')}\n    stdout_logfile_maxbytes: {p.get('maxbytes', 0)}\n"
                f"    stdout_logfile_backups: {p.get('backups', 0)}\n    stderr_logfile: NONE\n    pty: {str(p.get('pty', False)).lower()}"
            )
        (d / "tm.yaml").write_text("\n".join(lines) + "\n")
        self.d = d
        self.proc = subprocess.Popen([self.bin / "taskmasterd", "-c", d / "tm.yaml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("taskmasterd's socket", 10, lambda: (d / "tm.sock").exists())
        wait_for("taskmasterd to answer", 10, lambda: self.ctl("version").returncode == 0, interval=0.01)

    def ctl(self, *args):
        return subprocess.run([self.bin / "taskmasterctl", "-s", self.d / "tm.sock", *args], capture_output=True, text=True)

    def stop(self):
        kill_tree(self.proc)


class Supervisord:
    name = "supervisord"

    def __init__(self):
        py = VENV / "bin" / "python"
        if not (VENV / "bin" / "supervisord").exists():
            sh([sys.executable, "-m", "venv", VENV])
            sh([py, "-m", "pip", "install", "--quiet", f"supervisor=={SUPERVISOR_VERSION}"])
        self.bin = VENV / "bin"

    def start(self, d, programs):
        ini = [
            f"[unix_http_server]\nfile={d}/sv.sock\n",
            f"[supervisord]\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nnodaemon=true\n",
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
            f"[supervisorctl]\nserverurl=unix://{d}/sv.sock\n",
        ]
        for name, p in programs.items():
            n = p.get("numprocs", 1)
            ini.append(
                f"[program:{name}]\ncommand={' '.join(p['command'])}\nnumprocs={n}\n"
                + (f"process_name=%(program_name)s_%(process_num)d\n" if n > 1 else "")
                + f"autostart={str(p.get('autostart', True)).lower()}\nstartsecs={p.get('startsecs', 0)}\n"
                f"autorestart={ {'never': 'false', 'always': 'true'}.get(p.get('autorestart', 'never'), 'unexpected') }\n"
                f"stdout_logfile={p.get('stdout', 'NONE')}\nstdout_logfile_maxbytes={p.get('maxbytes', 0)}\n"
                f"stdout_logfile_backups={p.get('backups', 0)}\nstderr_logfile=NONE\n"
            )
        (d / "sv.ini").write_text("\n".join(ini))
        self.d = d
        self.proc = subprocess.Popen([self.bin / "supervisord", "-c", d / "sv.ini"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("supervisord's socket", 20, lambda: (d / "sv.sock").exists())
        wait_for("supervisord to answer", 20, lambda: self.ctl("pid").returncode == 0, interval=0.01)

    def ctl(self, *args):
        return subprocess.run([self.bin / "supervisorctl", "-c", self.d / "sv.ini", *args], capture_output=True, text=True)

    def stop(self):
        kill_tree(self.proc, timeout=60)


# ---------------------------------------------------------------- scenarios


def log_throughput(subject, size, rotate):
    """MB/s from `start` until every byte of a `head -c SIZE /dev/zero` is in the log files."""
    d = scratch()
    try:
        (d / "out").mkdir(mode=0o777)
        os.chmod(d / "out", 0o777)
        out = d / "out" / "writer.log"
        maxbytes, backups = (50 * MIB, 20) if rotate else (0, 0)
        prog = {"command": ["head", "-c", str(size), "/dev/zero"], "autostart": False, "stdout": str(out), "maxbytes": maxbytes, "backups": backups}
        subject.start(d, {"writer": prog})
        try:
            t0 = time.monotonic()
            r = subject.ctl("start", "writer")
            if r.returncode != 0:
                raise RuntimeError(f"{subject.name}: start failed: {r.stdout}{r.stderr}")
            wait_for("every byte in the log", 600, lambda: file_total(out, backups) >= size, interval=0.001)
            elapsed = time.monotonic() - t0
            try:
                wait_for("an exact count", 10, lambda: file_total(out, backups) == size)
            except RuntimeError:
                pass
            got = file_total(out, backups)
            if got != size:
                raise RuntimeError(f"{subject.name}: {got} bytes logged, expected {size}")
            return size / MIB / elapsed
        finally:
            subject.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def cat_reference(size):
    d = scratch()
    try:
        t0 = time.monotonic()
        sh(f"head -c {size} /dev/zero | cat > {d}/cat.out", shell=True)
        elapsed = time.monotonic() - t0
        assert os.path.getsize(d / "cat.out") == size
        return size / MIB / elapsed
    finally:
        shutil.rmtree(d, ignore_errors=True)


def pty_spawn(argv):
    """Runs argv on a new PTY; returns (process, master fd)."""
    import pty as ptymod
    master, slave = ptymod.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return proc, master


def read_until(fd, want, timeout=10):
    """Reads from fd until `want` bytes arrived (or `want` is found, when bytes); returns them."""
    import select
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        if isinstance(want, int) and len(got) >= want:
            return got
        if not isinstance(want, int) and want in got[-(len(want) + (1 << 20)):]:
            return got
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"timed out reading a pty (have {len(got)} bytes)")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            got += os.read(fd, 1 << 20)


def keystroke_latency(samples, via_fg, tm=None):
    """Round trip of one keystroke to `cat` on a PTY and its echo back: directly, or through
    taskmasterctl fg (the client on a PTY of its own, as a person's terminal)."""
    import termios
    if via_fg:
        proc, fd = pty_spawn([tm.bin / "taskmasterctl", "-s", tm.d / "tm.sock", "fg", "cat"])
        read_until(fd, b"\x1b[2J")
    else:
        proc, fd = pty_spawn(["cat"])
        time.sleep(0.2)
    out = []
    try:
        for i in range(samples):
            key = bytes([ord("a") + i % 26])
            t0 = time.perf_counter()
            os.write(fd, key)
            read_until(fd, key)
            out.append((time.perf_counter() - t0) * 1000)
            if i % 20 == 19:  # keep cat's line short: Enter, and drain the echoes
                os.write(fd, b"\r")
                got = read_until(fd, b"\n")
                while got.count(b"\n") < 2:  # the tty's echo of Enter, then cat's copy of the line
                    got += read_until(fd, b"\n")
    finally:
        if via_fg:
            os.write(fd, b"\x1d")
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        else:
            proc.kill()
        proc.wait()
        os.close(fd)
    return out


def wait_in_file(path, marker, timeout):
    """Waits until `marker` is in the growing file `path`, reading only what is new."""
    deadline = time.monotonic() + timeout
    seen = b""
    offset = 0
    while True:
        with open(path, "rb") as f:
            f.seek(offset)
            new = f.read()
        offset += len(new)
        seen = (seen + new)[-(len(marker) + 4096):]
        if marker in seen:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {marker!r} in {path}")
        time.sleep(0.001)


def under_script(command, out):
    """Runs `command` on a PTY read by script(1), a C reader, with its output in `out`."""
    return subprocess.Popen(["script", "-q", "-c", command, "/dev/null"], stdin=subprocess.PIPE, stdout=open(out, "wb"), stderr=subprocess.DEVNULL)


def pty_output_reference(d, size):
    """MB/s of the same writer straight onto a PTY read by script(1)."""
    out = d / "ref.out"
    t0 = time.monotonic()
    proc = under_script(f"head -c {size} /dev/zero | tr '\\0' a; echo END-REF", out)
    wait_in_file(out, b"END-REF", 120)
    elapsed = time.monotonic() - t0
    proc.wait()
    return size / MIB / elapsed


def attach_output(tm, size, token):
    """MB/s of program output reaching the terminal of a client attached with fg (the client on a
    PTY read by script(1))."""
    d = tm.d
    out = d / f"fg-{token}.out"
    proc = under_script(f"{tm.bin / 'taskmasterctl'} -s {d / 'tm.sock'} fg writer", out)
    try:
        wait_in_file(out, b"\x1b[2J", 20)
        t0 = time.monotonic()
        (d / "go").write_text(token)
        wait_in_file(out, f"END-{token}".encode(), 120)
        elapsed = time.monotonic() - t0
        shown = out.read_bytes().count(b"a")
        if shown < size:
            print(f"  fg output: {shown} of {size} bytes reached the terminal (a lagging client is skipped, then redrawn)", file=sys.stderr)
        return shown / MIB / elapsed
    finally:
        try:
            proc.stdin.write(b"\x1d")
            proc.stdin.close()
            proc.wait(5)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            proc.kill()
            proc.wait()
        out.unlink(missing_ok=True)


def attach_scenarios(tm, quick, runs):
    """Keystroke latency and output rate through fg (taskmaster only: supervisord has no PTY)."""
    d = scratch()
    size = (16 if quick else 100) * MIB
    rows = []
    try:
        writer = (
            f"while :; do while [ ! -e {d}/go ]; do sleep 0.01; done; t=$(cat {d}/go); rm -f {d}/go; "
            f"head -c {size} /dev/zero | tr '\\0' a; echo END-$t; done"
        )
        tm.start(d, {"cat": {"command": ["cat"], "pty": True, "autorestart": "always"}, "writer": {"command": ["/bin/sh", "-c", writer], "pty": True, "autorestart": "always"}})
        n = 100 if quick else 500
        direct = keystroke_latency(n, False)
        fg = keystroke_latency(n, True, tm)
        rows.append({"scenario": "fg keystroke round trip", "subject": "pty direct (reference)", "unit": "ms", "samples": direct, **summarize(direct)})
        rows.append({"scenario": "fg keystroke round trip", "subject": "taskmaster", "unit": "ms", "samples": fg, **summarize(fg)})
        added = statistics.median(fg) - statistics.median(direct)
        rows.append({"scenario": "fg keystroke added latency", "subject": "taskmaster", "unit": "ms", "samples": [added], **summarize([added])})
        ref = [pty_output_reference(d, size) for _ in range(runs)]
        rows.append({"scenario": "fg output", "subject": "pty direct (reference)", "unit": "MB/s", "samples": ref, **summarize(ref)})
        out = [attach_output(tm, size, f"run{i}x") for i in range(runs)]
        rows.append({"scenario": "fg output", "subject": "taskmaster", "unit": "MB/s", "samples": out, **summarize(out)})
    finally:
        tm.stop()
        shutil.rmtree(d, ignore_errors=True)
    return rows


# ---------------------------------------------------------------- supervision scenarios

HELPER = ROOT / "target" / "bench-helper"


def build_helper():
    if not HELPER.exists() or HELPER.stat().st_mtime < (ROOT / "bench" / "helper.c").stat().st_mtime:
        HELPER.parent.mkdir(parents=True, exist_ok=True)
        sh(["cc", "-O2", "-o", HELPER, ROOT / "bench" / "helper.c"])


def running_pids(subject):
    """Pids of the processes the subject reports RUNNING."""
    if subject.name == "taskmaster":
        r = subject.ctl("status", "--json")
        rows = json.loads(r.stdout or "[]")
        return [row["pid"] for row in rows if row["state"] == "RUNNING"]
    r = subject.ctl("status")
    pids = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            pids.append(int(parts[3].rstrip(",")))
    return pids


def daemon_pids(subject):
    """The supervisor's own processes: taskmaster's spawner and supervisor, or supervisord."""
    pids = [subject.proc.pid]
    if subject.name == "taskmaster":
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    stat = (p / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == subject.proc.pid and b"--supervisor-role" in (p / "cmdline").read_bytes():
                        pids.append(int(p.name))
                except (OSError, ValueError, IndexError):
                    pass
    return pids


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def restart_gaps(subject, cycles):
    """ms from a program's exit to its next start, by the program's own CLOCK_MONOTONIC stamps."""
    d = scratch()
    stamps = d / "stamps"
    try:
        subject.start(d, {"flap": {"command": [str(HELPER), "stamp", str(stamps), "3"], "startsecs": 0, "autorestart": "always", "startretries": 1000000}})
        try:
            wait_for(f"{cycles + 1} starts", 30 + 3 * cycles, lambda: stamps.exists() and stamps.read_text().count("S ") > cycles, interval=0.005)
        finally:
            subject.stop()
        lines = stamps.read_text().split()
        events = [(lines[i], int(lines[i + 1])) for i in range(0, len(lines) - 1, 2)]
        starts = [t for k, t in events if k == "S"]
        exits = [t for k, t in events if k == "E"]
        return [(starts[i + 1] - exits[i]) / 1e6 for i in range(min(cycles, len(starts) - 1))]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mass(subject, n, startsecs):
    """Seconds for: launch -> all RUNNING, stop all, start all, shutdown -> everything gone."""
    d = scratch()
    out = {}
    try:
        prog = {"command": ["sleep", "100000"], "numprocs": n, "startsecs": startsecs, "autorestart": "unexpected"}
        t0 = time.monotonic()
        subject.start(d, {"sleeper": prog})
        wait_for(f"{n} RUNNING", 120, lambda: len(running_pids(subject)) == n, interval=0.01 if subject.name == "taskmaster" else 0.1)
        out["launch -> all RUNNING"] = time.monotonic() - t0
        pids = running_pids(subject)
        t0 = time.monotonic()
        r = subject.ctl("stop", "all")
        out["stop all -> ctl returned"] = time.monotonic() - t0
        if r.returncode != 0 or any(alive(p) for p in pids):
            raise RuntimeError(f"{subject.name}: stop all left processes: {r.stdout[-300:]}")
        t0 = time.monotonic()
        subject.ctl("start", "all")
        wait_for(f"{n} RUNNING again", 120, lambda: len(running_pids(subject)) == n, interval=0.01 if subject.name == "taskmaster" else 0.1)
        out["start all -> all RUNNING"] = time.monotonic() - t0
        pids = running_pids(subject) + daemon_pids(subject)
        t0 = time.monotonic()
        subject.proc.send_signal(signal.SIGTERM)
        subject.proc.wait(120)
        wait_for("every child gone", 60, lambda: not any(alive(p) for p in pids), interval=0.005)
        out["shutdown -> all gone"] = time.monotonic() - t0
        return out
    finally:
        subject.stop()
        shutil.rmtree(d, ignore_errors=True)


def control_latency(subject, n, runs):
    """ms for the whole `status` and `status NAME` commands with n processes."""
    d = scratch()
    try:
        subject.start(d, {"sleeper": {"command": ["sleep", "100000"], "numprocs": n, "startsecs": 0}})
        wait_for(f"{n} RUNNING", 120, lambda: len(running_pids(subject)) == n, interval=0.05)
        one = "sleeper:7" if subject.name == "taskmaster" else "sleeper:sleeper_7"
        res = {}
        for label, args in (("status", ["status"]), ("status NAME", ["status", one])):
            samples = []
            for _ in range(runs):
                t0 = time.monotonic()
                r = subject.ctl(*args)
                samples.append((time.monotonic() - t0) * 1000)
                if not r.stdout.strip():
                    raise RuntimeError(f"{subject.name}: {args} printed nothing")
            res[label] = samples
        return res
    finally:
        subject.stop()
        shutil.rmtree(d, ignore_errors=True)


def cpu_ns_and_switches(pids):
    cpu, switches = 0, 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            cpu += int((task / "schedstat").read_text().split()[0])
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:") or line.startswith("nonvoluntary_ctxt_switches:"):
                    switches += int(line.split()[1])
    return cpu, switches


def memory_kib(pids):
    rss = pss = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss


def idle_and_memory(subject, idle_secs):
    """Idle cost with 100 sleeping programs, and the daemon's memory with 100 and 1000."""
    res = {}
    for n in (100, 1000):
        d = scratch()
        try:
            subject.start(d, {"sleeper": {"command": ["sleep", "100000"], "numprocs": n, "startsecs": 0}})
            wait_for(f"{n} RUNNING", 120, lambda: len(running_pids(subject)) == n, interval=0.05)
            pids = daemon_pids(subject)
            # Let start-up settle: the figures are of the daemon at rest with n programs, not of
            # the start-up burst's peak.
            time.sleep(1)
            if n == 100:
                c0, s0 = cpu_ns_and_switches(pids)
                time.sleep(idle_secs)  # the measurement itself: nothing may happen meanwhile
                c1, s1 = cpu_ns_and_switches(pids)
                res["idle CPU, 100 procs"] = ((c1 - c0) / 1e6 * 60 / idle_secs, "ms CPU/min")
                res["idle wakeups, 100 procs"] = ((s1 - s0) / idle_secs, "wakeups/s")
            rss, pss = memory_kib(pids)
            res[f"daemon RSS, {n} procs"] = (rss / 1024, "MiB")
            res[f"daemon PSS, {n} procs"] = (pss / 1024, "MiB")
        finally:
            subject.stop()
            shutil.rmtree(d, ignore_errors=True)
    return res


def resilience(subject, kills, lines):
    """Kill -9 the supervisor `kills` times while 100 programs run and one writes `lines`
    numbered lines at full speed (seq): ms from each kill until `status` answers again, and the
    lines missing from or doubled in the writer's log afterwards (taskmaster only: supervisord's
    death takes its programs' supervision with it)."""
    d = scratch()
    log = d / "seq.log"
    try:
        subject.start(d, {
            "sleeper": {"command": ["sleep", "100000"], "numprocs": 100, "startsecs": 0},
            "seq": {"command": ["seq", "1", str(lines)], "autostart": False, "stdout": str(log)},
        })
        wait_for("100 RUNNING", 60, lambda: len(running_pids(subject)) == 100, interval=0.05)
        before = sorted(running_pids(subject))
        subject.ctl("start", "seq")
        answers, during = [], 0
        for _ in range(kills):
            old = daemon_pids(subject)[1]
            writing = subject.ctl("status", "seq").stdout.split()[1:2] == ["RUNNING"]
            t0 = time.monotonic()
            os.kill(old, signal.SIGKILL)
            wait_for("a new supervisor", 10, lambda: (lambda p: len(p) == 2 and p[1] != old)(daemon_pids(subject)), interval=0.0005)
            wait_for("status again", 10, lambda: subject.ctl("status", "seq").returncode in (0, 3), interval=0.0005)
            answers.append((time.monotonic() - t0) * 1000)
            during += writing
        wait_for("seq to finish", 120, lambda: "EXITED" in subject.ctl("status", "seq").stdout, interval=0.01)
        want = subprocess.run(["seq", "1", str(lines)], capture_output=True, check=True).stdout
        wait_for("the whole log", 30, lambda: log.exists() and log.stat().st_size >= len(want), interval=0.01)
        got = log.read_bytes()
        lost = doubled = 0
        if got != want:
            seen = {}
            for line in got.split(b"\n"):
                if line:
                    seen[line] = seen.get(line, 0) + 1
            lost = sum(1 for i in range(1, lines + 1) if str(i).encode() not in seen)
            doubled = sum(c - 1 for c in seen.values() if c > 1)
        kept = sorted(running_pids(subject)) == before
        return answers, during, lost, doubled, kept
    finally:
        subject.stop()
        shutil.rmtree(d, ignore_errors=True)


def supervision_scenarios(subjects, quick, runs):
    build_helper()
    rows = []
    cycles = 10 if quick else 50
    for s in subjects:
        gaps = restart_gaps(s, cycles)
        p90 = sorted(gaps)[int(0.9 * (len(gaps) - 1))]
        rows.append({"scenario": "restart gap", "subject": s.name, "unit": "ms", "samples": gaps, **summarize(gaps), "p90": p90})
    sizes = (200,) if quick else (200, 1000)
    for n in sizes:
        ref = float(subprocess.run([HELPER, "spawnref", str(n)], capture_output=True, text=True, check=True).stdout)
        rows.append({"scenario": f"fork+exec+wait /bin/true x{n}", "subject": "reference", "unit": "s", "samples": [ref], **summarize([ref])})
        for startsecs in (1, 0):
            for s in subjects:
                figures = {}
                for _ in range(1 if not quick else 1):
                    for k, v in mass(s, n, startsecs).items():
                        figures.setdefault(k, []).append(v)
                for k, v in figures.items():
                    rows.append({"scenario": f"{n} procs, startsecs {startsecs}: {k}", "subject": s.name, "unit": "s", "samples": v, **summarize(v)})
    n = 200 if quick else 1000
    t_ref = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(["/bin/true"])
        t_ref.append((time.monotonic() - t0) * 1000)
    rows.append({"scenario": "control: run /bin/true", "subject": "reference", "unit": "ms", "samples": t_ref, **summarize(t_ref)})
    for s in subjects:
        for label, samples in control_latency(s, n, runs).items():
            rows.append({"scenario": f"control: {label}, {n} procs", "subject": s.name, "unit": "ms", "samples": samples, **summarize(samples)})
    for s in subjects:
        if s.name != "taskmaster":
            continue
        lines = 5_000_000 if quick else 30_000_000
        answers, during, lost, doubled, kept = resilience(s, 4, lines)
        if not kept:
            raise SystemExit("resilience: the 100 programs did not keep their pids across the kills")
        label = f"supervisor kill -9 x4 ({during} while seq wrote {lines} lines)"
        rows.append({"scenario": f"{label}: status answers again", "subject": s.name, "unit": "ms", "samples": answers, **summarize(answers)})
        rows.append({"scenario": f"{label}: log lines lost", "subject": s.name, "unit": "lines", "samples": [lost], **summarize([lost])})
        rows.append({"scenario": f"{label}: log lines doubled", "subject": s.name, "unit": "lines", "samples": [doubled], **summarize([doubled])})
    for s in subjects:
        for label, (value, unit) in idle_and_memory(s, 5 if quick else 30).items():
            rows.append({"scenario": label, "subject": s.name, "unit": unit, "samples": [value], **summarize([value])})
    return rows


# ---------------------------------------------------------------- driver


def summarize(samples):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "best": max(samples), "n": len(samples)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and few runs (under a minute)")
    ap.add_argument("--only", choices=["taskmaster", "supervisord"], help="measure one subject only")
    ap.add_argument("--runs", type=int, help="runs per figure (default 7, quick 3)")
    ap.add_argument("--scenario", choices=["logs", "attach", "supervision"], action="append", help="run only these scenarios (repeatable)")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    size = 64 * MIB if args.quick else 512 * MIB
    subjects = []
    if args.only in (None, "taskmaster"):
        subjects.append(Taskmaster())
    if args.only in (None, "supervisord"):
        subjects.append(Supervisord())

    scenarios = args.scenario or ["logs", "attach", "supervision"]
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs, "size_bytes": size, "supervisord": SUPERVISOR_VERSION, "rows": []}
    by_subject = {}
    ref = [cat_reference(size) for _ in range(runs)] if "logs" in scenarios else [1.0]
    if "logs" in scenarios:
        results["rows"].append({"scenario": "log throughput", "subject": "cat (reference)", "unit": "MB/s", "samples": ref, **summarize(ref)})
    for rotate in (False, True) if "logs" in scenarios else ():
        scen = "log throughput" + (" (rotating 50MB x 20)" if rotate else "")
        for s in subjects:
            samples = [log_throughput(s, size, rotate) for _ in range(runs)]
            row = {"scenario": scen, "subject": s.name, "unit": "MB/s", "samples": samples, **summarize(samples)}
            results["rows"].append(row)
            by_subject[(scen, s.name)] = row

    if "supervision" in scenarios:
        results["rows"].extend(supervision_scenarios(subjects, args.quick, runs))
    tm = next((s for s in subjects if s.name == "taskmaster"), None)
    if "attach" in scenarios and tm:
        results["rows"].extend(attach_scenarios(tm, args.quick, runs))

    print(f"{'scenario':52} {'subject':22} {'median':>9} {'min':>9} {'max':>9} {'best':>9} {'n':>3} unit  tm/sv  tm/cat(best)")
    ref_best = max(ref)
    for row in results["rows"]:
        by_subject.setdefault((row["scenario"], row["subject"]), row)
    for row in results["rows"]:
        tm = by_subject.get((row["scenario"], "taskmaster"))
        sv = by_subject.get((row["scenario"], "supervisord"))
        ratio_sv = f"{tm['median'] / sv['median']:.3f}" if row["subject"] == "taskmaster" and tm and sv and sv["median"] else ""
        ratio_cat = f"{row['best'] / ref_best:.2f}" if row["scenario"].startswith("log throughput") and row["subject"] != "cat (reference)" else ""
        if "p90" in row:
            row_note = f"  p90 {row['p90']:.3f}"
        else:
            row_note = ""
        print(f"{row['scenario']:52} {row['subject']:22} {row['median']:9.3f} {row['min']:9.3f} {row['max']:9.3f} {row['best']:9.3f} {row['n']:3} {row['unit']:5} {ratio_sv:>6}  {ratio_cat:>5}{row_note}")
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"raw samples: {out}")


if __name__ == "__main__":
    main()
