"""Where the cores went during each load phase of a benchmark run.

Reads `perf script -F time,pid,comm` output (recorded with --clockid realtime) on stdin, the
load generator's results JSON (its phases carry wall-clock windows) and NAME=PID pairs for the
platform's own processes. Prints, for each phase's load (first request until the last answer)
and its catch-up (until the recommender has stored every recommendation), the share of all CPU
time each process group used; samples of PID 0 are idle time.
"""

import json
import sys
from collections import Counter


def group_of(pid, comm, named):
    if pid == 0:
        return "idle"
    if pid in named:
        return named[pid]
    if comm.startswith("postgres"):
        return "postgres"
    return "other: " + comm


def main():
    results_path, pairs = sys.argv[1], sys.argv[2:]
    named = {}
    for pair in pairs:
        name, _, pid = pair.partition("=")
        if pid.isdigit():
            named[int(pid)] = name
    with open(results_path, encoding="utf-8") as results:
        phases = []
        for phase in json.load(results)["phases"]:
            window = phase["window"]
            started, loaded = window["started_ms"] / 1000, window["loaded_ms"] / 1000
            settled = window["settled_ms"] / 1000
            phases.append((phase["name"] + " load", started, loaded))
            phases.append((phase["name"] + " catch-up", loaded, settled))
    counts = {name: Counter() for name, _, _ in phases}
    for line in sys.stdin:
        # "<comm with spaces> <pid> <time>:"
        fields = line.split()
        if len(fields) < 3:
            continue
        try:
            time = float(fields[-1].rstrip(":"))
            pid = int(fields[-2])
        except ValueError:
            continue
        comm = " ".join(fields[:-2])
        for name, start, end in phases:
            if start <= time <= end:
                counts[name][group_of(pid, comm, named)] += 1
    for name, start, end in phases:
        total = sum(counts[name].values())
        if total == 0:
            continue
        print(f"{name} ({end - start:.1f} s, {total} samples):")
        for group, n in counts[name].most_common(10):
            print(f"  {100 * n / total:5.1f} %  {group}")


if __name__ == "__main__":
    main()
