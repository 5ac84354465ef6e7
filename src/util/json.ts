// JSON text → value; a syntax error is one line naming where the text came from (a file, a URL).
import { UserError } from './errors.ts';

export function parseJson(text: string | Uint8Array, where: string): unknown {
  try {
    return JSON.parse(typeof text === 'string' ? text : new TextDecoder().decode(text));
  } catch (e) {
    throw new UserError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * The first key (of `a`'s, then `b`'s) whose value differs as JSON between two config-like
 * objects, leaving out `skip`; null when they agree. Which sections a resumed run or a fine-tune
 * may change is the caller's rule.
 */
export function firstDifferingKey(a: object, b: object, skip: readonly string[] = []): string | null {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  for (const key of Object.keys({ ...x, ...y })) if (!skip.includes(key) && JSON.stringify(x[key]) !== JSON.stringify(y[key])) return key;
  return null;
}
