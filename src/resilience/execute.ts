/**
 * Runs one client request against its model's deployments until one answers: picks a deployment
 * whose breaker admits traffic, calls it under the timeout ladder, and on a classified failure
 * retries (same or next deployment, then the fallback models) as the retry policy says, within
 * the attempt limit, the request's deadline and the retry budget.
 *
 * An attempt "answers" once nothing about it can fail without the client seeing bytes: a JSON
 * body fully read, or a stream's first token. Until then every failure is retryable; after it
 * the caller relays the rest of the stream and a failure becomes an SSE error event.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { SluiceError } from '../errors/sluice-error.ts';
import type { Hold, OutboundResult } from '../limits/limiter.ts';
import {
  buildUpstreamBody,
  buildUpstreamRequest,
  type Endpoint,
  type UpstreamBody,
} from '../providers/openai.ts';
import { pickTwoChoices } from '../routing/select.ts';
import type { Deployment, ModelRoute, ProviderRuntime, Runtime } from '../runtime.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { RequestSpan } from '../telemetry/tracing.ts';
import { callUpstream, discardBody, readBounded } from '../upstream/call.ts';
import { classifyUpstreamError, UpstreamAbort } from '../upstream/classify.ts';
import type { UpstreamPools } from '../upstream/pools.ts';
import { awaitFirstToken } from '../upstream/relay.ts';
import { SseTap } from '../upstream/sse-tap.ts';
import { extractUsage, type Usage } from '../upstream/usage.ts';
import { isBreakerRejection } from './breaker.ts';
import { classifyFailure, isContextLengthError } from './failure-class.ts';
import type { HealthRegistry } from './health.ts';
import { decideRetry } from './retry-policy.ts';

export interface ExecuteDeps {
  readonly pools: UpstreamPools;
  readonly health: HealthRegistry;
  readonly metrics: Metrics;
  readonly random?: () => number;
}

export interface ExecuteRequest {
  readonly endpoint: Endpoint;
  readonly body: Readonly<Record<string, unknown>>;
  readonly requestId: string;
  /** The request's trace: each attempt gets a span of its own (or the client's traceparent). */
  readonly trace?: RequestSpan | undefined;
  readonly runtime: Runtime;
  readonly model: ModelRoute;
  /** Absolute deadline on the performance.now() clock. */
  readonly deadline: number;
  /** Aborted when the client goes away or the deadline passes. */
  readonly signal: AbortSignal;
  /** Updated as attempts are made, so an error response and the log line can say what happened. */
  readonly progress: {
    attempts: number;
    deployment: string | undefined;
    /** The deployment of the latest attempt (provider, region and pricing for the request log). */
    served: Deployment | undefined;
    fallback: string | undefined;
    /** The outbound budget hold of the attempt that answered, settled when the request ends. */
    outboundHold: Hold | undefined;
  };
  /** Provider outbound budgets (limits.providers), when any is configured. */
  readonly outbound?: OutboundGate | undefined;
}

/** A request's view of the providers' outbound budgets. */
export interface OutboundGate {
  /** ms until the provider's budget is known to refill; 0 when not known to be spent. */
  spentFor(provider: ProviderRuntime): number;
  /** Takes this request's share before an attempt. */
  take(provider: ProviderRuntime): Promise<OutboundResult>;
  /** Gives back the hold of an attempt that failed. */
  refund(hold: Hold | undefined): void;
}

interface Answered {
  readonly deployment: Deployment;
  readonly servedModel: string;
}

export interface JsonAnswer extends Answered {
  readonly kind: 'json';
  readonly status: number;
  readonly payload: Buffer;
  readonly usage: Usage | undefined;
}

export interface StreamAnswer extends Answered {
  readonly kind: 'stream';
  readonly body: Readable;
  readonly held: Buffer[];
  readonly tap: SseTap;
  /** The attempt's own signal (request signal plus the attempt's timers). */
  readonly signal: AbortSignal;
  /** Aborts the attempt with a reason (the relay's chunk-gap clock uses it). */
  abort(reason: UpstreamAbort): void;
  /** Must be called once when the relay ends. */
  finish(error: SluiceError | undefined): void;
}

export type Answer = JsonAnswer | StreamAnswer;

export async function execute(req: ExecuteRequest, deps: ExecuteDeps): Promise<Answer> {
  const random = deps.random ?? Math.random;
  const { runtime, progress } = req;
  const retry = runtime.config.retry;
  // The models to try, in order: the requested one, then its fallbacks (not theirs: no chains).
  let groups: ModelRoute[] = [req.model, ...req.model.fallbacks.map((name) => runtime.models.get(name)!)];
  let contextFallbackUsed = false;
  const tried = new Set<string>();
  let retryOn: Deployment | undefined;
  let lastFailed: Deployment | undefined;
  let lastError: SluiceError | undefined;

  const outbound = req.outbound;
  // Usable now: its breaker admits traffic and its provider's outbound budget is not spent.
  const usable: Usable = outbound
    ? (d) => deps.health.get(d.id).breaker.admits() && outbound.spentFor(d.provider) === 0
    : (d) => deps.health.get(d.id).breaker.admits();
  const load = (d: Deployment) => deps.health.get(d.id).outstanding;
  let budgetRetryMs = Number.POSITIVE_INFINITY;

  for (;;) {
    const next =
      retryOn && usable(retryOn)
        ? { deployment: retryOn, group: groupOf(groups, retryOn) }
        : (pick(groups, tried, usable, load, random) ??
          // Back to a tried deployment only when retry.sameDeployment allows it.
          (lastFailed && retry.sameDeployment
            ? pickAgain(groups, lastFailed, usable, load, random)
            : undefined));
    retryOn = undefined;
    if (!next) {
      if (lastError) throw lastError;
      if (outbound) {
        for (const g of groups)
          for (const d of g.deployments)
            budgetRetryMs = Math.min(
              budgetRetryMs,
              outbound.spentFor(d.provider) || Number.POSITIVE_INFINITY,
            );
      }
      if (Number.isFinite(budgetRetryMs)) throw budgetSpent(req.model, budgetRetryMs);
      throw allUnavailable(req.model, groups, deps.health);
    }
    const { deployment, group } = next;
    // Built before the breaker sees anything: a body Sluice cannot serialise is Sluice's failure,
    // a 500 for this request, never a mark against the deployment.
    let prepared: UpstreamBody;
    try {
      prepared = buildUpstreamBody(req.endpoint, req.body, deployment);
    } catch (err) {
      throw internalError(err);
    }
    let hold: Hold | undefined;
    if (outbound) {
      const taken = await outbound.take(deployment.provider);
      if (!taken.ok) {
        budgetRetryMs = Math.min(budgetRetryMs, taken.retryAfterMs);
        tried.add(deployment.id);
        continue;
      }
      hold = taken.hold;
    }
    const health = deps.health.get(deployment.id);
    const now = Date.now();
    if (progress.attempts === 0) {
      health.budget.recordRequest(now);
    } else if (!health.budget.tryRetry(now)) {
      deps.metrics.retryBudgetExhausted.inc({ deployment: deployment.id });
      outbound?.refund(hold);
      throw lastError!;
    }
    if (progress.attempts > 0) deps.metrics.retries.inc({ deployment: deployment.id });
    progress.attempts++;
    progress.deployment = deployment.id;
    progress.served = deployment;
    progress.fallback = group.name === req.model.name ? undefined : group.name;
    tried.add(deployment.id);

    try {
      // Checked just above; a half-open breaker that gave its probe to another request meanwhile
      // (possible across the outbound budget's await) refuses, and the loop picks again.
      const answer = await health.breaker.run(() => attempt(req, deployment, group.name, prepared, deps));
      progress.outboundHold = hold;
      return answer;
    } catch (err) {
      outbound?.refund(hold);
      if (isBreakerRejection(err)) {
        progress.attempts--;
        continue;
      }
      const error = err as SluiceError;
      // A bug in Sluice is not retried (another attempt would hit the same bug) and is no failure class.
      if (error.code === 'internal_error') throw error;
      lastError = error;
      lastFailed = deployment;
      const failure = classifyFailure(error);
      deps.metrics.attemptFailures.inc({ deployment: deployment.id, class: failure });
      if (failure === 'rate_limited') {
        deps.metrics.providerRateLimits.inc({ provider: deployment.provider.name });
      }
      if (req.signal.aborted) throw classifyUpstreamError(err, deployment.id, req.signal);
      if (failure === 'permanent') {
        const bigger = group.contextFallback && runtime.models.get(group.contextFallback);
        if (
          bigger &&
          !contextFallbackUsed &&
          isContextLengthError(error) &&
          progress.attempts < retry.maxAttempts
        ) {
          contextFallbackUsed = true;
          groups = [bigger];
          continue;
        }
      }
      const decision = decideRetry(
        {
          failure,
          attempts: progress.attempts,
          remainingMs: req.deadline - performance.now(),
          hasUntried: pick(groups, tried, usable, load, random) !== undefined,
          retryAfterMs: error.retryAfterSeconds === undefined ? undefined : error.retryAfterSeconds * 1000,
        },
        retry,
        random,
      );
      if (!decision.retry) throw error;
      if (decision.sameDeployment) retryOn = deployment;
      if (decision.delayMs > 0) {
        try {
          await sleep(decision.delayMs, undefined, { signal: req.signal });
        } catch (sleepErr) {
          throw classifyUpstreamError(sleepErr, deployment.id, req.signal);
        }
      }
    }
  }
}

/** One upstream call, up to the point where it has answered (see the module comment). */
async function attempt(
  req: ExecuteRequest,
  deployment: Deployment,
  servedModel: string,
  prepared: UpstreamBody,
  deps: ExecuteDeps,
): Promise<Answer> {
  const health = deps.health.get(deployment.id);
  const timeouts = deployment.timeouts;
  // The attempt's own controller, which the request's abort (client gone, deadline) is forwarded
  // to. Cheaper than AbortSignal.any, which showed up at ~5% of CPU in profiles.
  const controller = new AbortController();
  const signal = controller.signal;
  const forwardAbort = () => controller.abort(req.signal.reason);
  if (req.signal.aborted) forwardAbort();
  else req.signal.addEventListener('abort', forwardAbort, { once: true });
  const started = performance.now();
  // The attempt's own backstop, only when the deployment's total is shorter than what the request
  // has left (the request's deadline timer covers the rest).
  const totalTimer =
    timeouts.totalTimeoutMs < req.deadline - started
      ? setTimeout(() => controller.abort(new UpstreamAbort('total_timeout')), timeouts.totalTimeoutMs)
      : undefined;
  const span = req.trace?.attempt(deployment);
  let released = false;
  const release = (outcome: string) => {
    if (released) return;
    released = true;
    clearTimeout(totalTimer);
    req.signal.removeEventListener('abort', forwardAbort);
    health.outstanding--;
    span?.end(outcome);
    deps.metrics.hot.upstreamDuration
      .get(deployment.provider.name, deployment.id, outcome)
      .observe((performance.now() - started) / 1000);
  };

  const upstreamReq = buildUpstreamRequest(req.endpoint, prepared, deployment, {
    requestId: req.requestId,
    traceparent: span?.traceparent,
  });
  // First token: response headers for JSON; real output (not just headers) for streams.
  const firstTokenTimer = setTimeout(
    () => controller.abort(new UpstreamAbort('first_token_timeout')),
    timeouts.firstTokenTimeoutMs,
  );
  let body: Readable | undefined;
  // Counted here, next to the try whose every exit releases it (release() runs once).
  health.outstanding++;
  try {
    const res = await callUpstream(deps.pools, upstreamReq, timeouts, deployment.id, signal);
    body = res.body;
    if (!upstreamReq.stream) {
      clearTimeout(firstTokenTimer);
      const payload = await readBounded(
        res.body,
        req.runtime.config.server.maxResponseBytes,
        deployment.id,
        signal,
      );
      release('ok');
      return {
        kind: 'json',
        deployment,
        servedModel,
        status: res.statusCode,
        payload,
        usage: extractUsage(payload),
      };
    }
    const tap = new SseTap(!upstreamReq.clientWantsUsage);
    const held = await awaitFirstToken(res.body, tap, deployment.id, signal);
    clearTimeout(firstTokenTimer);
    return {
      kind: 'stream',
      deployment,
      servedModel,
      body: res.body,
      held,
      tap,
      signal,
      abort: (reason) => controller.abort(reason),
      finish: (error) => release(error ? error.code : 'ok'),
    };
  } catch (err) {
    clearTimeout(firstTokenTimer);
    if (body !== undefined) discardBody(body);
    // Every transport failure arrives here already classified; an abort is classified by its
    // reason. Anything else is a bug in Sluice: a 500 for this request, and for the breaker not a
    // failure (opossum records an error its filter ignores as a success).
    const error =
      err instanceof SluiceError
        ? err
        : signal.aborted
          ? classifyUpstreamError(err, deployment.id, signal)
          : internalError(err);
    release(error.code);
    throw error;
  }
}

function groupOf(groups: readonly ModelRoute[], deployment: Deployment): ModelRoute {
  return groups.find((g) => g.deployments.includes(deployment)) ?? groups[0]!;
}

type Usable = (deployment: Deployment) => boolean;

/**
 * Once every deployment was tried: any usable one again, preferring one other than the deployment
 * that just failed (a retry should not go back to a dead region when a live one exists).
 */
function pickAgain(
  groups: readonly ModelRoute[],
  lastFailed: Deployment,
  usable: Usable,
  load: (d: Deployment) => number,
  random: () => number,
): { deployment: Deployment; group: ModelRoute } | undefined {
  let failedGroup: ModelRoute | undefined;
  for (const group of groups) {
    const candidates = group.deployments.filter((d) => d !== lastFailed && usable(d));
    if (candidates.length > 0) return { deployment: pickTwoChoices(candidates, load, random), group };
    if (group.deployments.includes(lastFailed)) failedGroup = group;
  }
  return failedGroup && usable(lastFailed) ? { deployment: lastFailed, group: failedGroup } : undefined;
}

/** The next deployment to try: the first model group with an untried usable deployment. */
function pick(
  groups: readonly ModelRoute[],
  tried: ReadonlySet<string>,
  usable: Usable,
  load: (d: Deployment) => number,
  random: () => number,
): { deployment: Deployment; group: ModelRoute } | undefined {
  for (const group of groups) {
    const candidates = group.deployments.filter((d) => !tried.has(d.id) && usable(d));
    if (candidates.length > 0) return { deployment: pickTwoChoices(candidates, load, random), group };
  }
  return undefined;
}

function internalError(cause: unknown): SluiceError {
  return new SluiceError(
    'internal_error',
    'Internal error in the gateway; see the gateway log for this request id.',
    { cause },
  );
}

function budgetSpent(model: ModelRoute, retryAfterMs: number): SluiceError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new SluiceError(
    'provider_budget_exhausted',
    `Every provider that serves model '${model.name}' is out of its outbound budget; retry in ${seconds} s.`,
    { retryAfterSeconds: seconds },
  );
}

function allUnavailable(
  model: ModelRoute,
  groups: readonly ModelRoute[],
  health: HealthRegistry,
): SluiceError {
  let earliest = Number.POSITIVE_INFINITY;
  for (const group of groups) {
    for (const d of group.deployments) {
      const at = health.get(d.id).breaker.halfOpenAt();
      if (at > 0 && at < earliest) earliest = at;
    }
  }
  const seconds = Number.isFinite(earliest) ? Math.max(1, Math.ceil((earliest - Date.now()) / 1000)) : 1;
  const names = groups.map((g) => g.name).join(', ');
  return new SluiceError(
    'deployments_unavailable',
    `Every deployment of model '${model.name}' and its fallbacks (${names}) is failing; circuit breakers are open. Retry in ${seconds} s.`,
    { retryAfterSeconds: seconds },
  );
}
