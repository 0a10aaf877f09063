/** A store URL for logs and messages. */
/** The URL as it may be logged: its password replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = 'redacted';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', 'redacted');
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:redacted@');
  }
}
