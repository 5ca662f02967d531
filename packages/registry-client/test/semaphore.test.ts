import { setTimeout as sleep } from 'node:timers/promises';
import { Semaphore } from '../src/semaphore.js';

test('never runs more tasks than its limit, and runs them all', async () => {
  const sem = new Semaphore(2);
  let running = 0;
  let peak = 0;
  const done: number[] = [];
  await Promise.all(
    Array.from({ length: 9 }, (_, i) => sem.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await sleep(i % 3);
      running--;
      done.push(i);
    })),
  );
  expect(peak).toBe(2);
  expect(done.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
});

test('a newcomer cannot overtake a waiter when a slot is handed over', async () => {
  const sem = new Semaphore(1);
  const order: string[] = [];
  let release!: () => void;
  const first = sem.run(() => new Promise<void>((r) => (release = r)).then(() => order.push('first')));
  const waiter = sem.run(async () => order.push('waiter'));
  release();
  // Queued after the first task finished but before the waiter got its turn.
  const newcomer = Promise.resolve().then(() => sem.run(async () => order.push('newcomer')));
  await Promise.all([first, waiter, newcomer]);
  expect(order).toEqual(['first', 'waiter', 'newcomer']);
});

test('a failing task frees its slot', async () => {
  const sem = new Semaphore(1);
  await expect(sem.run(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
  await expect(sem.run(async () => 42)).resolves.toBe(42);
});

test('rejects a limit below 1', () => {
  expect(() => new Semaphore(0)).toThrow(RangeError);
});
