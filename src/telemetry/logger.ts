/**
 * pino is configured here and nowhere else. Redaction is the last line of defence: provider keys
 * and client keys are never put in log objects on purpose, and these paths catch them if a
 * header bag or a provider config is ever logged by mistake.
 */
import { type DestinationStream, type Logger, pino } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  'apiKey',
  'api_key',
  'headers.authorization',
  'headers["api-key"]',
  'headers["x-api-key"]',
  '*.authorization',
  '*.apiKey',
  '*.api_key',
  '*.headers.authorization',
  '*.headers["api-key"]',
  '*.headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'config.providers.*.apiKey',
  'providers.*.apiKey',
  'providers.*.headers',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'sluice' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };
