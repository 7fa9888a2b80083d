import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

/**
 * Calls `onChange` after the config file changes, debounced. The directory is watched, not the
 * file: editors and config-map updates replace the file by rename, which ends a file watch.
 */
export function watchConfigFile(file: string, debounceMs: number, onChange: () => void): () => void {
  const path = resolve(file);
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
    // Kubernetes config maps swap a `..data` symlink; any event there may be our file.
    if (changed !== null && changed !== name && !String(changed).startsWith('..')) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  watcher.on('error', () => {});
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
