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
        sh(["cargo", "build", "--release", "--quiet", "--bin", "taskmasterd", "--bin", "taskmasterctl"], cwd=ROOT)
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
                f"    stdout_logfile_backups: {p.get('backups', 0)}\n    stderr_logfile: NONE"
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


# ---------------------------------------------------------------- driver


def summarize(samples):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "best": max(samples), "n": len(samples)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and few runs (under a minute)")
    ap.add_argument("--only", choices=["taskmaster", "supervisord"], help="measure one subject only")
    ap.add_argument("--runs", type=int, help="runs per figure (default 7, quick 3)")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    size = 64 * MIB if args.quick else 512 * MIB
    subjects = []
    if args.only in (None, "taskmaster"):
        subjects.append(Taskmaster())
    if args.only in (None, "supervisord"):
        subjects.append(Supervisord())

    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs, "size_bytes": size, "supervisord": SUPERVISOR_VERSION, "rows": []}
    ref = [cat_reference(size) for _ in range(runs)]
    results["rows"].append({"scenario": "log throughput", "subject": "cat (reference)", "unit": "MB/s", "samples": ref, **summarize(ref)})
    by_subject = {}
    for rotate in (False, True):
        scen = "log throughput" + (" (rotating 50MB x 20)" if rotate else "")
        for s in subjects:
            samples = [log_throughput(s, size, rotate) for _ in range(runs)]
            row = {"scenario": scen, "subject": s.name, "unit": "MB/s", "samples": samples, **summarize(samples)}
            results["rows"].append(row)
            by_subject[(scen, s.name)] = row

    print(f"{'scenario':34} {'subject':16} {'median':>9} {'min':>9} {'max':>9} {'best':>9} {'n':>3} unit  tm/sv  tm/cat(best)")
    ref_best = max(ref)
    for row in results["rows"]:
        tm = by_subject.get((row["scenario"], "taskmaster"))
        sv = by_subject.get((row["scenario"], "supervisord"))
        ratio_sv = f"{tm['median'] / sv['median']:.2f}" if row["subject"] == "taskmaster" and tm and sv else ""
        ratio_cat = f"{row['best'] / ref_best:.2f}" if row["subject"] != "cat (reference)" else ""
        print(f"{row['scenario']:34} {row['subject']:16} {row['median']:9.1f} {row['min']:9.1f} {row['max']:9.1f} {row['best']:9.1f} {row['n']:3} {row['unit']:5} {ratio_sv:>5}  {ratio_cat:>5}")
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"raw samples: {out}")


if __name__ == "__main__":
    main()
