/**
 * The admission queues of this instance, one per model: the I/O around model-queue.ts. A request
 * asks for a slot after the limiters and before its first upstream call, and holds it until its
 * response ends (stream included; retries and fallbacks run inside the slot). Waiting requests
 * leave at once when their client goes away or their wait deadline passes (a timer each), and are
 * never sent upstream. Depth and in-flight are read at scrape time; waits and refusals are counted.
 */
import type { Priority } from '../config/defaults.ts';
import type { QueueConfig } from '../config/schema.ts';
import { SluiceError } from '../errors/sluice-error.ts';
import type { ModelRoute, Runtime } from '../runtime.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { ModelQueue, type QueueSettings, type Refusal, type Waiter } from './model-queue.ts';

/** A held slot; release it exactly once, when the request ends. */
export interface Slot {
  /** How long the request waited for it, ms. */
  readonly waitedMs: number;
  release(): void;
}

interface Pending {
  resolve(slot: Slot): void;
  reject(err: SluiceError): void;
  timer: NodeJS.Timeout | undefined;
  cleanup: (() => void) | undefined;
}

export interface AcquireRequest {
  readonly model: ModelRoute;
  readonly priority: Priority;
  readonly tenant: string;
  /** The request's own deadline, on the performance.now() clock. */
  readonly deadline: number;
  /** Aborted when the client goes away (reason kind client_closed_request) or the deadline passes. */
  readonly signal: AbortSignal;
}

export interface QueueSnapshot {
  model: string;
  maxConcurrent: number;
  inFlight: number;
  maxQueued: number;
  queued: number;
  queuedByPriority: Record<Priority, number>;
  oldestWaitMs: number;
  serviceMs: number;
  expectedWaitMs: number;
}

const NO_SLOT: Slot = { waitedMs: 0, release() {} };

export class AdmissionQueues {
  readonly #metrics: Metrics;
  readonly #clock: () => number;
  readonly #queues = new Map<string, ModelQueue<Pending>>();
  readonly #waitChildren = new Map<string, { observe(value: number): void }>();
  #config: QueueConfig;
  #total = 0;

  constructor(runtime: Runtime, metrics: Metrics, clock: () => number = () => performance.now()) {
    this.#metrics = metrics;
    this.#clock = clock;
    this.#config = runtime.config.queue;
    this.configure(runtime);
    const queues = this.#queues;
    metrics.setQueueSource(() =>
      [...queues].map(([model, q]) => ({ model, queued: q.queued, inFlight: q.inFlight })),
    );
  }

  /** Follows the config: new models get a queue, changed settings apply (waiters stay). */
  configure(runtime: Runtime): void {
    this.#config = runtime.config.queue;
    for (const model of runtime.models.values()) {
      const settings = this.#settings(model);
      const queue = this.#queues.get(model.name);
      if (!queue) this.#queues.set(model.name, new ModelQueue<Pending>(settings));
      else {
        queue.configure(settings);
        this.#startWaiters(model.name, queue, queue.fill(this.#clock()));
      }
    }
  }

  /**
   * A slot for the request: at once when one is free and nobody waits, else after waiting in line.
   * Rejects with a SluiceError when refused (full, tenant's share, deadline) or when the wait ends
   * without a slot (deadline passed, client gone).
   */
  acquire(req: AcquireRequest): Slot | Promise<Slot> {
    if (!this.#config.enabled) return NO_SLOT;
    const model = req.model.name;
    const queue = this.#queues.get(model);
    if (!queue) return NO_SLOT; // a model added by a reload this instant: no queue yet
    const now = this.#clock();
    const waitDeadline = Math.min(req.deadline, now + this.#config.maxWaitMs);
    const pending: Pending = { resolve: () => {}, reject: () => {}, timer: undefined, cleanup: undefined };
    const result = queue.enqueue(req.priority, req.tenant, now, waitDeadline, pending, {
      queued: this.#total,
      max: this.#config.maxQueuedTotal,
    });
    if ('refused' in result) throw this.#refusal(model, result.refused);
    if (result.started) {
      this.#wait(model).observe(0);
      return this.#slot(model, queue, now, 0);
    }
    const waiter = result.waiter;
    this.#total++;
    return new Promise<Slot>((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
      const leave = (reason: 'timeout' | 'client_gone') => {
        if (!queue.remove(waiter)) return;
        this.#total--;
        this.#done(pending);
        this.#metrics.queueRefusals.inc({ model, reason });
        reject(
          reason === 'timeout'
            ? new SluiceError(
                'queue_timeout',
                `Waited ${Math.round(this.#clock() - waiter.enqueuedAt)} ms for model '${model}' without a free slot; retry later.`,
                { retryAfterSeconds: seconds(queue.expectedWaitMs(queue.queued)) },
              )
            : new SluiceError('client_closed_request', 'The client closed the connection while queued.'),
        );
      };
      pending.timer = setTimeout(() => leave('timeout'), Math.max(0, waitDeadline - now));
      if (req.signal.aborted) {
        leave(whyAborted(req.signal));
        return;
      }
      const onAbort = () => leave(whyAborted(req.signal));
      req.signal.addEventListener('abort', onAbort, { once: true });
      pending.cleanup = () => req.signal.removeEventListener('abort', onAbort);
    });
  }

  snapshot(): QueueSnapshot[] {
    const now = this.#clock();
    return [...this.#queues].map(([model, q]) => ({
      model,
      maxConcurrent: q.settings.maxConcurrent,
      inFlight: q.inFlight,
      maxQueued: q.settings.maxQueued,
      queued: q.queued,
      queuedByPriority: {
        critical: q.queuedBy('critical'),
        standard: q.queuedBy('standard'),
        batch: q.queuedBy('batch'),
      },
      oldestWaitMs: Math.round(q.oldestWaitMs(now)),
      serviceMs: Math.round(q.serviceMs * 10) / 10,
      expectedWaitMs: q.expectedWaitMs(q.queued),
    }));
  }

  #settings(model: ModelRoute): QueueSettings {
    const c = this.#config;
    return {
      maxConcurrent: model.capacity.maxConcurrent,
      maxQueued: model.capacity.maxQueued,
      agingMs: c.agingMs,
      shares: c.shares,
      maxQueuedPerTenant: c.maxQueuedPerTenant,
    };
  }

  #slot(model: string, queue: ModelQueue<Pending>, startedAt: number, waitedMs: number): Slot {
    let released = false;
    return {
      waitedMs,
      release: () => {
        if (released) return;
        released = true;
        const now = this.#clock();
        this.#startWaiters(model, queue, queue.release(now, now - startedAt));
      },
    };
  }

  #startWaiters(
    model: string,
    queue: ModelQueue<Pending>,
    next: { start: Waiter<Pending>[]; expired: Waiter<Pending>[] },
  ): void {
    if (next.start.length === 0 && next.expired.length === 0) return;
    const now = this.#clock();
    for (const w of next.expired) {
      this.#total--;
      this.#done(w.value);
      this.#metrics.queueRefusals.inc({ model, reason: 'timeout' });
      w.value.reject(
        new SluiceError('queue_timeout', `No free slot for model '${model}' before the request's deadline.`, {
          retryAfterSeconds: seconds(queue.expectedWaitMs(queue.queued)),
        }),
      );
    }
    for (const w of next.start) {
      this.#total--;
      this.#done(w.value);
      const waited = now - w.enqueuedAt;
      this.#wait(model).observe(waited / 1000);
      w.value.resolve(this.#slot(model, queue, now, waited));
    }
  }

  /** The model's wait histogram child, cached: labelling by object hashes on every call. */
  #wait(model: string): { observe(value: number): void } {
    let child = this.#waitChildren.get(model);
    if (!child) {
      child = this.#metrics.queueWait.labels(model);
      this.#waitChildren.set(model, child);
    }
    return child;
  }

  #done(p: Pending): void {
    clearTimeout(p.timer);
    p.cleanup?.();
  }

  #refusal(model: string, refusal: Refusal): SluiceError {
    this.#metrics.queueRefusals.inc({ model, reason: refusal.reason });
    const retryAfterSeconds = seconds(refusal.retryAfterMs);
    if (refusal.reason === 'tenant_full') {
      return new SluiceError(
        'queue_tenant_full',
        `This tenant already has ${this.#config.maxQueuedPerTenant} requests waiting for model '${model}'; retry in ${retryAfterSeconds} s.`,
        { retryAfterSeconds },
      );
    }
    if (refusal.reason === 'deadline') {
      return new SluiceError(
        'queue_wait_exceeds_deadline',
        `Model '${model}' is busy: the expected wait (${refusal.expectedWaitMs} ms) is longer than this request's deadline allows; retry in ${retryAfterSeconds} s.`,
        { retryAfterSeconds },
      );
    }
    return new SluiceError(
      'queue_full',
      `Model '${model}' has no room in its queue on this instance for this priority; retry in ${retryAfterSeconds} s.`,
      { retryAfterSeconds },
    );
  }
}

/** The request's signal carries both its client leaving and its deadline passing. */
function whyAborted(signal: AbortSignal): 'client_gone' | 'timeout' {
  return (signal.reason as { kind?: string } | undefined)?.kind === 'client_closed_request'
    ? 'client_gone'
    : 'timeout';
}

/** A retry-after in whole seconds, at least 1. */
function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
