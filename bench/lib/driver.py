"""Alternating command timer for jobbox's benchmarks.

Each variant is one or more commands run in sequence (so a peer that needs `cgcreate` then `cgexec` is timed as
both, with no shell in between); optional `prepare` and `cleanup` commands run around every timed run and are
not timed. Variants are run in turn, round after round (A B C A B C ...), after a warm-up, so drift of the
machine hits every variant alike. Timing is wall clock from posix_spawn of the first command to the reaping of
the last, in milliseconds.
"""
import json
import os
import statistics
import subprocess
import time


_DEVNULL = os.open(os.devnull, os.O_RDWR)
# The measured commands' output is not part of the measurement: it goes to /dev/null.
_QUIET = [(os.POSIX_SPAWN_DUP2, _DEVNULL, 1), (os.POSIX_SPAWN_DUP2, _DEVNULL, 2)]


def _run(argv, env=None):
    pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ, file_actions=_QUIET)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _quiet(argv):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


class Variant:
    def __init__(self, label, commands, prepare=(), cleanup=(), env=None, allowed_status=(0,)):
        self.label = label
        self.commands = [list(c) for c in commands]
        self.prepare = [list(c) for c in prepare]
        self.cleanup = [list(c) for c in cleanup]
        self.env = env
        self.allowed_status = allowed_status
        self.samples = []

    def once(self, record):
        for c in self.prepare:
            _quiet(c)
        start = time.perf_counter_ns()
        for argv in self.commands:
            status = _run(argv, self.env)
            if status not in self.allowed_status:
                raise RuntimeError("%s: %s exited %d" % (self.label, " ".join(argv), status))
        elapsed = (time.perf_counter_ns() - start) / 1e6
        for c in self.cleanup:
            _quiet(c)
        if record:
            self.samples.append(elapsed)


def compare(title, variants, runs=200, warmup=20):
    """Times every variant `runs` times, alternating; returns a result dict (the first variant is jobbox's)."""
    for _ in range(warmup):
        for v in variants:
            v.once(record=False)
    for _ in range(runs):
        for v in variants:
            v.once(record=True)
    base = statistics.median(variants[0].samples)
    rows = []
    for v in variants:
        med = statistics.median(v.samples)
        rows.append({
            "label": v.label,
            "median_ms": round(med, 3),
            "min_ms": round(min(v.samples), 3),
            "max_ms": round(max(v.samples), 3),
            "runs": len(v.samples),
            "ratio_to_first": round(med / base, 3) if base > 0 else None,
        })
    return {"title": title, "rows": rows}


def markdown(results):
    """The results as Markdown tables, one per scenario."""
    out = []
    for r in results:
        out.append("### " + r["title"])
        out.append("")
        out.append("| variant | median ms | min ms | max ms | runs | ratio to jobbox |")
        out.append("|---|---|---|---|---|---|")
        for row in r["rows"]:
            out.append("| %s | %.3f | %.3f | %.3f | %d | %s |" % (
                row["label"], row["median_ms"], row["min_ms"], row["max_ms"], row["runs"],
                "%.2f" % row["ratio_to_first"] if row["ratio_to_first"] is not None else "-"))
        for note in r.get("notes", []):
            out.append("")
            out.append(note)
        out.append("")
    return "\n".join(out)


def save(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
