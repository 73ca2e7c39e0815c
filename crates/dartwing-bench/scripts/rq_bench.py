"""RQ side of `dartwing-bench jobs` (RQ is the queue Frappe uses).

Run by the bench with the virtualenv's Python; prints one JSON object on its last line.

  rq_bench.py j1 --redis-url URL --tag TAG --jobs N --single S --worker-class rq.worker.SimpleWorker
  rq_bench.py j2 --redis-url URL --tag TAG --a-jobs 2000 --b-jobs 20 --sleep-ms 10

Every key lives under the prefix `dwbench-rq-<tag>` (RQ_KEY_PREFIX, set for this process and the
workers), and all of them are deleted at the end; nothing else in the shared Redis is touched.
J1: S jobs enqueued one by one, the rest with `Queue.enqueue_many` in pipelines of 500, then two
`rq worker --burst` processes, and the finished registry polled every 20 ms until all N are done.
J2: org A's backlog of sleep jobs, then org B's few, then two burst workers; B's wait is
started_at - enqueued_at of each of its jobs.
"""

import argparse
import json
import os
import subprocess
import sys
import time

TAG_ENV = "RQ_KEY_PREFIX"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["j1", "j2"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="rq.worker.SimpleWorker")
    parser.add_argument("--a-jobs", type=int, default=2000)
    parser.add_argument("--b-jobs", type=int, default=20)
    parser.add_argument("--sleep-ms", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600.0)
    return parser.parse_args()


ARGS = parse_args()
PREFIX = f"dwbench-rq-{ARGS.tag}"
# RQ reads its key prefix when imported: set it first, for this process and the workers.
os.environ[TAG_ENV] = PREFIX

from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402
from rq.job import Job  # noqa: E402

SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))
RQ_BIN = os.path.join(os.path.dirname(sys.executable), "rq")


def start_workers(queue_name, count, worker_class):
    """Starts `count` burst workers; returns the processes."""
    env = dict(os.environ)
    env[TAG_ENV] = PREFIX
    procs = []
    for i in range(count):
        cmd = [
            RQ_BIN,
            "worker",
            "--burst",
            "--worker-class",
            worker_class,
            "--url",
            ARGS.redis_url,
            "--path",
            SCRIPTS_DIR,
            "--name",
            f"{PREFIX}-w{i}",
            queue_name,
        ]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def stop_workers(procs):
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_finished(conn, queue, expected, deadline):
    """Polls the finished registry every 20 ms until `expected` jobs are in it."""
    key = queue.finished_job_registry.key
    while True:
        done = conn.zcard(key)
        if done >= expected:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise SystemExit(f"timeout: {done} of {expected} RQ jobs finished")
        time.sleep(0.02)


def cleanup(conn):
    """Deletes every key under this run's prefix."""
    deleted = 0
    batch = []
    for key in conn.scan_iter(match=f"{PREFIX}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += conn.delete(*batch)
            batch = []
    if batch:
        deleted += conn.delete(*batch)
    return deleted


def enqueue_batched(conn, queue, func, args, ids):
    for start in range(0, len(ids), ARGS.batch):
        pipe = conn.pipeline()
        datas = [Queue.prepare_data(func, args=args, job_id=job_id) for job_id in ids[start : start + ARGS.batch]]
        queue.enqueue_many(datas, pipeline=pipe)
        pipe.execute()


def j1(conn):
    queue = Queue(f"{PREFIX}-j1", connection=conn)
    single = min(ARGS.single, ARGS.jobs)
    t0 = time.perf_counter()
    for i in range(single):
        queue.enqueue("rq_bench_tasks.noop", job_id=f"{PREFIX}-s{i}")
    t1 = time.perf_counter()
    ids = [f"{PREFIX}-j{i}" for i in range(ARGS.jobs - single)]
    enqueue_batched(conn, queue, "rq_bench_tasks.noop", (), ids)
    t2 = time.perf_counter()
    procs = start_workers(queue.name, ARGS.workers, ARGS.worker_class)
    started = time.perf_counter()
    try:
        finished = wait_finished(conn, queue, ARGS.jobs, started + ARGS.timeout)
    finally:
        stop_workers(procs)
    return {
        "jobs": ARGS.jobs,
        "enqueue_single_per_s": single / (t1 - t0) if single else None,
        "enqueue_batch_per_s": len(ids) / (t2 - t1) if ids else None,
        "process_s": finished - started,
        "process_per_s": ARGS.jobs / (finished - started),
    }


def j2(conn):
    queue = Queue(f"{PREFIX}-j2", connection=conn)
    a_ids = [f"{PREFIX}-a{i}" for i in range(ARGS.a_jobs)]
    enqueue_batched(conn, queue, "rq_bench_tasks.sleep_ms", (ARGS.sleep_ms,), a_ids)
    b_ids = [f"{PREFIX}-b{i}" for i in range(ARGS.b_jobs)]
    for job_id in b_ids:
        queue.enqueue("rq_bench_tasks.sleep_ms", ARGS.sleep_ms, job_id=job_id)
    procs = start_workers(queue.name, ARGS.workers, ARGS.worker_class)
    started = time.perf_counter()
    try:
        wait_finished(conn, queue, ARGS.a_jobs + ARGS.b_jobs, started + ARGS.timeout)
    finally:
        stop_workers(procs)
    waits = []
    for job in Job.fetch_many(b_ids, connection=conn):
        if job is None or job.started_at is None or job.enqueued_at is None:
            raise SystemExit("an RQ job of org B has no start time")
        waits.append((job.started_at - job.enqueued_at).total_seconds() * 1000.0)
    return {"b_wait_ms": waits}


def main():
    conn = Redis.from_url(ARGS.redis_url)
    try:
        result = j1(conn) if ARGS.scenario == "j1" else j2(conn)
    finally:
        result_deleted = cleanup(conn)
    result["keys_deleted"] = result_deleted
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
