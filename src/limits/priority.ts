/**
 * A request's priority class: its tenant's, or a lower one it asks for with `x-sluice-priority`
 * (a critical tenant can mark its background work as batch). Asking for a higher class than the
 * tenant's has no effect: priority is the operator's decision, not the caller's.
 */
import { PRIORITIES, type Priority } from '../config/defaults.ts';
import { SluiceError } from '../errors/sluice-error.ts';

export const PRIORITY_HEADER = 'x-sluice-priority';

export function requestPriority(tenantPriority: Priority, header: string | string[] | undefined): Priority {
  if (header === undefined) return tenantPriority;
  const asked = PRIORITIES.indexOf(header as Priority);
  if (typeof header !== 'string' || asked < 0) {
    throw new SluiceError(
      'invalid_request',
      `The ${PRIORITY_HEADER} header must be one of ${PRIORITIES.join(', ')}.`,
      {
        param: PRIORITY_HEADER,
      },
    );
  }
  return asked > PRIORITIES.indexOf(tenantPriority) ? PRIORITIES[asked]! : tenantPriority;
}
