/**
 * Work over many items on the main thread, a slice per event-loop turn: between slices the loop
 * serves I/O (requests, health probes), so work that grows with a config's size delays no request
 * by more than one slice.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Items handled per turn: about a millisecond of work for a tenant entry. */
export const ITEMS_PER_TURN = 1_000;

export async function eachInTurns<T>(
  items: readonly T[],
  fn: (item: T) => void,
  perTurn = ITEMS_PER_TURN,
): Promise<void> {
  for (let start = 0; start < items.length; start += perTurn) {
    if (start > 0) await nextTurn();
    const end = Math.min(items.length, start + perTurn);
    for (let i = start; i < end; i++) fn(items[i]!);
  }
}
