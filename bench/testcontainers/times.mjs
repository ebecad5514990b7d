// One line per test file: how long its setup took (BENCH_TIMES).
import { appendFileSync } from 'node:fs';

export function record(approach, ms) {
  if (process.env.BENCH_TIMES)
    appendFileSync(process.env.BENCH_TIMES, JSON.stringify({ approach, setup_ms: ms }) + '\n');
}
