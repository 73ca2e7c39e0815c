// BullMQ side of `dartwing-bench jobs`. Run by the bench from this directory; prints one JSON
// object on its last line.
//
//   node bullmq_bench.mjs j1 --redis-url URL --tag TAG --jobs N --single S --concurrency C
//   node bullmq_bench.mjs j2 --redis-url URL --tag TAG --a-jobs 2000 --b-jobs 20 --sleep-ms 10
//
// Workers run in 2 child processes of their own (like 2 worker processes), each one BullMQ
// Worker with the given concurrency. The clock starts when both are connected and told to go.
// J1: S jobs added one by one, the rest with `addBulk` in batches of 500; the completed count
// is polled every 20 ms until all N are done. J2: org A's backlog of sleep jobs, then org B's
// few; B's wait is processedOn - timestamp of each of its jobs. Queue names are unique per run
// and every queue is obliterated at the end.

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const SELF = fileURLToPath(import.meta.url);

function parseArgs(argv) {
  const opts = {
    scenario: argv[0],
    redisUrl: 'redis://127.0.0.1:6379',
    tag: 'x',
    jobs: 20000,
    single: 2000,
    batch: 500,
    workers: 2,
    concurrency: 1,
    aJobs: 2000,
    bJobs: 20,
    sleepMs: 10,
    timeout: 600,
    queue: '',
  };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    const value = argv[i + 1];
    opts[key] = typeof opts[key] === 'number' ? Number(value) : value;
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function connection() {
  return new IORedis(opts.redisUrl, { maxRetriesPerRequest: null });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Child process: one Worker; reports `ready`, starts on `go`, closes on `stop`.
async function workerMain() {
  const processor =
    opts.sleepMs > 0
      ? async (job) => {
          await sleep(job.data.ms);
        }
      : async () => {};
  const worker = new Worker(opts.queue, processor, {
    connection: connection(),
    concurrency: opts.concurrency,
    autorun: false,
  });
  worker.on('error', (err) => process.stderr.write(`worker error: ${err}\n`));
  await worker.waitUntilReady();
  process.on('message', async (msg) => {
    if (msg === 'go') {
      worker.run().catch((err) => process.stderr.write(`worker run failed: ${err}\n`));
    } else if (msg === 'stop') {
      await worker.close();
      process.exit(0);
    }
  });
  process.send('ready');
  // Bounded: a worker never outlives the run's timeout.
  setTimeout(() => process.exit(2), (opts.timeout + 30) * 1000).unref();
}

async function startWorkers(queue, concurrency, sleepMs) {
  const children = [];
  const ready = [];
  for (let i = 0; i < opts.workers; i += 1) {
    const child = fork(
      SELF,
      [
        'worker',
        '--redis-url', opts.redisUrl,
        '--queue', queue,
        '--concurrency', String(concurrency),
        '--sleep-ms', String(sleepMs),
        '--timeout', String(opts.timeout),
      ],
      { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
    );
    children.push(child);
    ready.push(
      new Promise((resolve, reject) => {
        child.once('message', (m) => (m === 'ready' ? resolve() : reject(new Error(String(m)))));
        child.once('exit', (code) => reject(new Error(`worker exited early (${code})`)));
      }),
    );
  }
  await Promise.all(ready);
  for (const child of children) child.send('go');
  return children;
}

async function stopWorkers(children) {
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.send('stop');
        }),
    ),
  );
}

async function waitCompleted(queue, expected, deadline) {
  for (;;) {
    const done = await queue.getCompletedCount();
    if (done >= expected) return performance.now();
    if (performance.now() > deadline) throw new Error(`timeout: ${done} of ${expected} BullMQ jobs completed`);
    await sleep(20);
  }
}

async function addBatched(queue, name, data, count) {
  for (let start = 0; start < count; start += opts.batch) {
    const n = Math.min(opts.batch, count - start);
    await queue.addBulk(Array.from({ length: n }, () => ({ name, data })));
  }
}

async function j1(queue) {
  const single = Math.min(opts.single, opts.jobs);
  const t0 = performance.now();
  for (let i = 0; i < single; i += 1) await queue.add('noop', {});
  const t1 = performance.now();
  await addBatched(queue, 'noop', {}, opts.jobs - single);
  const t2 = performance.now();
  const children = await startWorkers(queue.name, opts.concurrency, 0);
  const started = performance.now();
  let finished;
  try {
    finished = await waitCompleted(queue, opts.jobs, started + opts.timeout * 1000);
  } finally {
    await stopWorkers(children);
  }
  const seconds = (finished - started) / 1000;
  return {
    jobs: opts.jobs,
    enqueue_single_per_s: single ? single / ((t1 - t0) / 1000) : null,
    enqueue_batch_per_s: opts.jobs > single ? (opts.jobs - single) / ((t2 - t1) / 1000) : null,
    process_s: seconds,
    process_per_s: opts.jobs / seconds,
  };
}

async function j2(queue) {
  await addBatched(queue, 'sleep', { org: 'A', ms: opts.sleepMs }, opts.aJobs);
  const bJobs = [];
  for (let i = 0; i < opts.bJobs; i += 1) bJobs.push(await queue.add('sleep', { org: 'B', ms: opts.sleepMs }));
  const children = await startWorkers(queue.name, opts.concurrency, opts.sleepMs);
  const started = performance.now();
  try {
    await waitCompleted(queue, opts.aJobs + opts.bJobs, started + opts.timeout * 1000);
  } finally {
    await stopWorkers(children);
  }
  const waits = [];
  for (const added of bJobs) {
    const job = await queue.getJob(added.id);
    if (!job || !job.processedOn) throw new Error('a BullMQ job of org B has no start time');
    waits.push(job.processedOn - job.timestamp);
  }
  return { b_wait_ms: waits };
}

async function main() {
  if (opts.scenario === 'worker') return workerMain();
  const conn = connection();
  const queue = new Queue(`dwbench-${opts.tag}-${opts.scenario}`, { connection: conn });
  let result;
  try {
    result = opts.scenario === 'j1' ? await j1(queue) : await j2(queue);
  } finally {
    await queue.obliterate({ force: true });
    await queue.close();
    // Whatever obliterate left (nothing, normally): only this run's keys, found with SCAN.
    let cursor = '0';
    do {
      const [next, keys] = await conn.scan(cursor, 'MATCH', `bull:${queue.name}:*`, 'COUNT', 1000);
      if (keys.length) await conn.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await conn.quit();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`bullmq bench failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
