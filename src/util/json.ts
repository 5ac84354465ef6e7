// JSON text → value; a syntax error is one line naming where the text came from (a file, a URL).
import { UserError } from './errors.ts';

export function parseJson(text: string | Uint8Array, where: string): unknown {
  try {
    return JSON.parse(typeof text === 'string' ? text : new TextDecoder().decode(text));
  } catch (e) {
    throw new UserError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}
