/**
 * Credentials in URLs never reach logs, errors, image history or cache keys:
 * `scheme://user:password@host` is shown as `scheme://user:xxxxx@host` (as
 * Go's URL.Redacted, which BuildKit uses). A user without a password in an
 * http(s) URL is hidden too: that is where access tokens go
 * (`https://<token>@host/repo.git`).
 */
export function redactUrlsIn(text: string): string {
  return text
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*):[^\s/?#@]*@/gi, '$1:xxxxx@')
    .replace(/\b(https?:\/\/)[^\s/?#@:]+@/gi, '$1xxxxx@');
}

/** One URL (or any ADD source) with its credentials hidden. */
export function redactUrl(source: string): string {
  return redactUrlsIn(source);
}
