"""Peak memory of each notebook's top-to-bottom run: the RSS of its kernel and the kernel's children.

    .venv/bin/python benchmarks/notebook_memory.py                       # all twelve notebooks
    .venv/bin/python benchmarks/notebook_memory.py notebooks/03_*.ipynb  # some
    .venv/bin/python benchmarks/notebook_memory.py --json memory.json    # the rows as JSON too

Why: a Binder session has about 2 GB of memory (and Colab's free tier about 12 GB), so every
notebook must fit; the course's target is at most 1.5 GB (``LIMIT_MB``) per notebook, measured
here, and a notebook above it is a failure to fix, not a number to report.

How: each notebook runs in a fresh Python kernel (nbclient, as ``tools/run_notebooks.py`` and
nbval run it: the notebook's folder as the working directory), from memory: nothing is written,
the outputs are thrown away. The kernel is started by a worker process of its own, so the
numbers of one notebook never mix with another's. Two measures:

* ``peak_mb``: the largest sum of RSS over the kernel and every process under it (DataLoader
  workers, the ranks of notebook 12's ``launch_local``), sampled every ``--interval`` seconds.
  Shared pages (torch's libraries, mapped by every rank) count once per process, so with
  children this is an upper bound of what they need together; a spike shorter than the interval
  can be missed.
* ``largest_process_mb``: the exact peak RSS of the largest single process (the kernel, or one
  child), from the operating system's accounting once they have ended (``ru_maxrss``): it misses
  nothing, but does not add processes up.

Torch uses ``--threads`` threads (default 1, as on Binder; see binder/start): memory hardly
depends on it. Run it on a quiet machine: the notebooks together run for about 15 minutes.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 1536   # 1.5 GB: the course's target per notebook (a Binder session has about 2 GB)
MB = 1024 * 1024


def measure(path: Path, interval: float, timeout: int) -> dict:
    """Run ``path`` in a fresh kernel, started by this process; must be called in a process that
    has started no other children (``main`` runs each notebook in a worker of its own)."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    me = psutil.Process()
    peak, processes, done = [0], [0], threading.Event()

    def sample():
        while not done.is_set():
            total, count = 0, 0
            for child in me.children(recursive=True):   # the kernel and everything under it
                try:
                    total += child.memory_info().rss
                    count += 1
                except psutil.Error:   # ended between the listing and the reading
                    pass
            peak[0], processes[0] = max(peak[0], total), max(processes[0], count)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    sampler.start()
    try:
        client.execute()
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    # ru_maxrss: KiB on Linux, bytes on macOS; of the largest child (and grandchild) that has ended
    scale = 1 if sys.platform == "darwin" else 1024
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return {"notebook": path.name, "peak_mb": round(peak[0] / MB), "largest_process_mb": round(largest / MB),
            "processes": processes[0], "seconds": round(seconds), "within_limit": peak[0] / MB <= LIMIT_MB}


def table(rows: list[dict]) -> str:
    lines = ["| notebook | peak RSS, kernel + children (MB) | largest process (MB) | processes | run (s) | "
             f"<= {LIMIT_MB} MB |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['notebook']} | {r['peak_mb']} | {r['largest_process_mb']} | {r['processes']} | "
                     f"{r['seconds']} | {'yes' if r['within_limit'] else '**no**'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between samples (default 0.05)")
    parser.add_argument("--threads", type=int, default=1, help="torch's threads in the kernel (default 1)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)   # one notebook, JSON out
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.notebooks[0].resolve(), args.interval, args.timeout)))
        return 0
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    rows = []
    for path in paths:
        worker = subprocess.run([sys.executable, __file__, "--worker", str(path), "--interval", str(args.interval),
                                 "--timeout", str(args.timeout)], capture_output=True, text=True, env=env)
        if worker.returncode != 0:
            print(f"{path}: the run failed\n{worker.stderr[-3000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(worker.stdout.strip().splitlines()[-1]))
        print(f"{path.name}: peak {rows[-1]['peak_mb']} MB", file=sys.stderr)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["within_limit"] for r in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
