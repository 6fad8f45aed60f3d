// BullMQ's side of `ordersync-dev bench` (section b'): the same no-op
// workload as ordersync's (a) and (b), run against the same Redis in the same
// bench run, so the ratio between the two is not a comparison across days.
//
//   node noop.mjs <redis-url> <jobs> <concurrency>
//
// Enqueue uses Queue.addBulk in batches of 1,000 (BullMQ's fastest producer
// path); consumption is one Worker with the given concurrency and a handler
// that does nothing. Prints one JSON line: {"enqueue_per_s":..,"consume_per_s":..}.
import { Queue, Worker } from 'bullmq';

const [redisUrl = 'redis://127.0.0.1:6379', jobsArg = '100000', concurrencyArg = '50'] =
  process.argv.slice(2);
const jobs = Number.parseInt(jobsArg, 10);
const concurrency = Number.parseInt(concurrencyArg, 10);
if (!Number.isInteger(jobs) || jobs <= 0 || !Number.isInteger(concurrency) || concurrency <= 0) {
  console.error(`usage: node noop.mjs <redis-url> <jobs> <concurrency> (got jobs=${jobsArg}, concurrency=${concurrencyArg})`);
  process.exit(2);
}
const url = new URL(redisUrl);
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  db: Number(url.pathname.slice(1) || 0),
  maxRetriesPerRequest: null,
};
// A prefix of our own: the run leaves nothing behind and touches nothing else.
const prefix = `bench-bullmq-${process.pid}`;
const name = 'noop';
const queue = new Queue(name, { connection, prefix });

const batch = 1000;
const enqueueStarted = performance.now();
for (let i = 0; i < jobs; i += batch) {
  const size = Math.min(batch, jobs - i);
  await queue.addBulk(Array.from({ length: size }, (_, j) => ({ name, data: { n: i + j } })));
}
const enqueueSecs = (performance.now() - enqueueStarted) / 1000;

let done = 0;
let consumeStarted;
const finished = new Promise((resolve) => {
  const worker = new Worker(name, async () => {}, { connection, prefix, concurrency, autorun: false });
  worker.on('completed', () => {
    done += 1;
    if (done === jobs) resolve(worker);
  });
  worker.on('failed', (job, err) => {
    console.error(`bullmq job ${job?.id} failed: ${err?.message}`);
  });
  consumeStarted = performance.now();
  worker.run();
});
const worker = await finished;
const consumeSecs = (performance.now() - consumeStarted) / 1000;
await worker.close();
await queue.obliterate({ force: true });
await queue.close();
console.log(JSON.stringify({ enqueue_per_s: jobs / enqueueSecs, consume_per_s: jobs / consumeSecs }));
