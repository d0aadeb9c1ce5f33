"""What the quotas cost a submission: the early queue check plus the job's insert (CPU, wall).

Run it against two trees to compare (``PYTHONPATH=<tree> python benchmarks/quota_guard.py
[--db URL]``): a tree with ``quotas.submission_guard`` checks again inside the insert's
transaction under a lock on the instance; an older one inserts without. The instance has 3,000
finished jobs of history (the queued-jobs count must not grow with it). Medians of ``--repeat``
rounds of 300 submissions; SQLite in a temporary data dir unless ``--db`` is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import types
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="SQLAlchemy URL (default: SQLite in a temporary dir)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()

    from qiskit_rest_provider.server.config import ServerConfig, instance_crn
    from qiskit_rest_provider.server.jobs import quotas
    from qiskit_rest_provider.server.jobs.models import Job
    from qiskit_rest_provider.server.jobs.store import Store, new_id

    config = ServerConfig(data_dir=Path(tempfile.mkdtemp()), db_url=args.db)
    config.prepare_data_dir()
    store = Store(config)
    inst = store.ensure_instance("local/default/main", instance_crn("local/default/main"))
    caller = types.SimpleNamespace(instance_id=inst.id, instance_hgp="local/default/main")
    st = types.SimpleNamespace(store=store, config=config)

    def job() -> Job:
        return Job(id=new_id(), instance_id=inst.id, user_id="u", backend="rest_simulator",
                   program_id="sampler", params=b"{}", state="Completed", tags="[]",
                   created=time.time(), logs="", usage_seconds=0.0, quantum_seconds=0.0,
                   attempts=0, shots=10)  # fmt: skip

    with store.sessions.begin() as s:  # an instance with some history
        for _ in range(3000):
            s.add(job())
    guarded = hasattr(quotas, "submission_guard")

    def submit() -> None:
        row = quotas.check_queue(st, caller)
        guard = quotas.submission_guard(st, caller, 10, row) if guarded else None
        if guard is None:
            store.create_job(job())
        else:
            store.create_job(job(), guard=guard)

    walls, cpus = [], []
    for _ in range(2 if args.quick else args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(300):
            submit()
        walls.append((time.perf_counter() - t0) / 300 * 1e3)
        cpus.append((time.process_time() - c0) / 300 * 1e3)
    rows = {
        "tree": "guarded" if guarded else "unguarded",
        "database": store.engine.dialect.name,
        "wall_ms_per_submission": statistics.median(walls),
        "cpu_ms_per_submission": statistics.median(cpus),
    }
    store.close()
    print("| measure | value |\n|---|---|")
    for key, value in rows.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
