/**
 * WWW-Authenticate parsing (RFC 7235 §4.1). A header may carry several
 * challenges separated by commas, and commas also separate a challenge's
 * parameters, so the only way to tell them apart is to look ahead: a token
 * followed by '=' continues the current challenge, anything else starts a new
 * one. Quoted strings may contain commas, '=' and backslash escapes.
 */
export interface Challenge {
  /** Lowercased scheme, e.g. 'bearer' or 'basic'. */
  scheme: string;
  /** Lowercased parameter names; values unquoted. */
  params: Record<string, string>;
  /** Present for schemes that use a token68 instead of parameters. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

export function parseChallenges(header: string | null | undefined): Challenge[] {
  if (!header) return [];
  const s = header;
  let i = 0;
  const out: Challenge[] = [];

  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i] ?? '')) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    // Precondition: s[i] === '"'. An unterminated string runs to the end,
    // which is the most useful reading of a slightly broken header.
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or past the end)
    return v;
  };
  /** True if the text at i is `token BWS "=" BWS value`, i.e. an auth-param. */
  const atParam = (): boolean => {
    const save = i;
    const name = readToken();
    skipWs();
    let ok = false;
    if (name !== '' && s[i] === '=') {
      i++;
      skipWs();
      ok = s[i] === '"' || (i < s.length && TCHAR.test(s[i] ?? ''));
    }
    i = save;
    return ok;
  };

  // Bounded by construction: every iteration consumes at least one character.
  while (i < s.length) {
    const before = i;
    while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
    const scheme = readToken();
    if (scheme === '') {
      if (i === before) i++; // skip a stray character we cannot parse
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    skipWs();
    if (!atParam() && i < s.length && s[i] !== ',') {
      // token68 form, e.g. `Negotiate abc123==`
      const start = i;
      while (i < s.length && TOKEN68_CHAR.test(s[i] ?? '')) i++;
      while (i < s.length && s[i] === '=') i++;
      if (i > start) challenge.token68 = s.slice(start, i);
      continue;
    }
    // Parameters: keep going while the next comma-separated item is `name=`.
    for (;;) {
      skipWs();
      if (!atParam()) break;
      const name = readToken().toLowerCase();
      skipWs();
      i++; // '='
      skipWs();
      const value = s[i] === '"' ? readQuoted() : readToken();
      challenge.params[name] = value;
      skipWs();
      if (s[i] !== ',') break;
      const save = i;
      while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
      if (!atParam()) {
        i = save; // next challenge starts here
        break;
      }
    }
  }
  return out;
}
