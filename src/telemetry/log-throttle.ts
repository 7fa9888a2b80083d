/**
 * At most `maxLines` log lines per window for one kind of event a hostile client can trigger at
 * will (a refused connection, a failed key), so an attack cannot turn into a log flood. Lines
 * held back are counted and the next line written says how many. Pure: the clock is passed in.
 */
export class LogThrottle {
  readonly #maxLines: number;
  readonly #windowMs: number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #lines = 0;
  #suppressed = 0;

  constructor(maxLines: number, windowMs: number) {
    this.#maxLines = maxLines;
    this.#windowMs = windowMs;
  }

  /**
   * Whether a line may be written now: the number of lines held back since the last one written
   * (to put in it), or undefined to hold this one back too.
   */
  take(now: number): number | undefined {
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#lines = 0;
    }
    if (this.#lines >= this.#maxLines) {
      this.#suppressed++;
      return undefined;
    }
    this.#lines++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
