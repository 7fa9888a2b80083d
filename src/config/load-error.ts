/** A config that cannot be used; `path` names the field (`models.gpt-4o.deployments[0].provider`). */
export class ConfigError extends Error {
  readonly path: string;
  /** The message without the path, to rebuild the error on the other side of a thread. */
  readonly reason: string;
  constructor(path: string, message: string) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'ConfigError';
    this.path = path;
    this.reason = message;
  }
}
