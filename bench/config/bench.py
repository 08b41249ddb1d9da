#!/usr/bin/env python3
"""Times `--show-config --ini big.ini` for imperium and uWSGI and compares the printed
configuration blocks.

The clock runs from spawning the process to reading the `;end of configuration` line
(both programs print the block once every file is read and every expansion pass has
run); the process is then killed. uWSGI never stops on its own after printing the
configuration (it goes on to start its server), so time-to-marker is the figure that
measures the same work in both. Runs alternate between the two binaries.

usage: bench.py IMPERIUM UWSGI DIR [REPS]
"""
import os
import signal
import statistics
import subprocess
import sys
import time

MARKER = ";end of configuration"
START = ";uWSGI instance configuration"


def run_once(binary: str, workdir: str, env: dict) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [binary, "--show-config", "--ini", "big.ini"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    elapsed = None
    assert p.stdout is not None
    for raw in p.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        lines.append(line)
        if line == MARKER:
            elapsed = time.perf_counter() - t0
            break
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.stdout.close()
    p.wait()
    if elapsed is None:
        tail = "\n".join(lines[-15:])
        raise SystemExit(f"{binary}: exited (status {p.returncode}) without printing '{MARKER}':\n{tail}")
    return elapsed, lines


def block(lines: list[str]) -> list[str]:
    start = max(i for i, l in enumerate(lines) if l == START)
    return lines[start : lines.index(MARKER, start) + 1]


def main() -> None:
    imperium, uwsgi, workdir = sys.argv[1:4]
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    # A fixed, small environment so $(HOME) and everything else is the same for both.
    env = {"HOME": "/home/bench", "PATH": "/usr/bin:/bin", "LANG": "C"}

    # Warm-up (page cache, dynamic loader) and the show-config comparison.
    _, out_i = run_once(imperium, workdir, env)
    _, out_u = run_once(uwsgi, workdir, env)
    bi, bu = block(out_i), block(out_u)
    with open(os.path.join(workdir, "show-imperium.txt"), "w") as f:
        f.write("\n".join(bi) + "\n")
    with open(os.path.join(workdir, "show-uwsgi.txt"), "w") as f:
        f.write("\n".join(bu) + "\n")
    if bi == bu:
        print(f"show-config: identical ({len(bi)} lines)")
    else:
        print(f"show-config: DIFFERENT (imperium {len(bi)} lines, uWSGI {len(bu)} lines)")
        shown = 0
        for n in range(max(len(bi), len(bu))):
            a = bi[n] if n < len(bi) else "<none>"
            b = bu[n] if n < len(bu) else "<none>"
            if a != b:
                print(f"  block line {n + 1}:\n    imperium: {a}\n    uWSGI:    {b}")
                shown += 1
                if shown == 5:
                    break
        print(f"  full blocks: {workdir}/show-imperium.txt {workdir}/show-uwsgi.txt")

    ti: list[float] = []
    tu: list[float] = []
    for _ in range(reps):
        ti.append(run_once(imperium, workdir, env)[0])
        tu.append(run_once(uwsgi, workdir, env)[0])
    mi, mu = statistics.median(ti), statistics.median(tu)
    print(f"time to '{MARKER}', {reps} runs each (alternating):")
    for name, t, m in (("imperium", ti, mi), ("uWSGI", tu, mu)):
        print(f"  {name:9} median {m * 1000:8.2f} ms   min {min(t) * 1000:8.2f}   max {max(t) * 1000:8.2f}")
    print(f"  ratio (uWSGI / imperium): {mu / mi:.2f}")


if __name__ == "__main__":
    main()
