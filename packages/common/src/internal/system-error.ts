// What an operator reads when a socket or file operation fails: Node's errno codes in words,
// with the code kept for searching (`address already in use (EADDRINUSE)`).

const TEXT: Readonly<Record<string, string>> = Object.freeze({
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed, try again',
  EAI_FAIL: 'host name lookup failed',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EMFILE: 'too many open files',
  EINVAL: 'invalid argument',
});

/** The errno code of `err` (`EADDRINUSE`), from its `code` or else its message; or undefined. */
export function systemErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
  const message = err instanceof Error ? err.message : String(err);
  return /\b(E(?:AI_)?[A-Z]{3,})\b/.exec(message)?.[1];
}

/**
 * `err` as one line for an operator: `address already in use (EADDRINUSE)` for a known errno
 * code, else the error's message (its first line).
 */
export function systemErrorText(err: unknown): string {
  const code = systemErrorCode(err);
  if (code !== undefined && Object.hasOwn(TEXT, code)) return `${TEXT[code]} (${code})`;
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!;
}
