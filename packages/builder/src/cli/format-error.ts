/** `error: Dockerfile:12: message` for errors with a location; the stack only with --debug. */
export function formatError(err: unknown, debug: boolean): string {
  if (!(err instanceof Error)) return `error: ${String(err)}`;
  const e = err as Error & { file?: string; line?: number; code?: string };
  const where = e.line !== undefined ? `${e.file ?? 'Dockerfile'}:${e.line}: ` : '';
  let text = `error: ${where}${e.message}`;
  if (debug) text += `\n${e.code ? `code: ${e.code}\n` : ''}${e.stack ?? ''}`;
  return text;
}
