/** Hash routes of the console. Pure: parses `location.hash` into a route. */
export type Route =
  | { name: 'login' }
  | { name: 'agents' }
  | { name: 'agent'; id: string }
  | { name: 'operations' }
  | { name: 'operation'; id: string }
  | { name: 'seeds' }
  | { name: 'new-seed'; source?: string; target?: string }
  | { name: 'seed'; id: string }
  | { name: 'audit' }
  | { name: 'not-found'; hash: string };

export function parseRoute(hash: string): Route {
  const [pathPart = '', queryPart = ''] = hash.replace(/^#/, '').split('?', 2);
  const parts = pathPart.split('/').filter((p) => p !== '').map(safeDecode);
  const query = new URLSearchParams(queryPart);
  const [first, second, ...rest] = parts;
  if (rest.length > 0) return { name: 'not-found', hash };
  switch (first) {
    case undefined:
    case 'agents':
      return second === undefined ? { name: 'agents' } : { name: 'agent', id: second };
    case 'login':
      return { name: 'login' };
    case 'operations':
      return second === undefined ? { name: 'operations' } : { name: 'operation', id: second };
    case 'seeds':
      if (second === undefined) return { name: 'seeds' };
      if (second === 'new') return { name: 'new-seed', ...(query.get('source') ? { source: query.get('source')! } : {}), ...(query.get('target') ? { target: query.get('target')! } : {}) };
      return { name: 'seed', id: second };
    case 'audit':
      return second === undefined ? { name: 'audit' } : { name: 'not-found', hash };
    default:
      return { name: 'not-found', hash };
  }
}

/** Which top navigation entry a route belongs to. */
export function sectionOf(route: Route): string {
  switch (route.name) {
    case 'agent':
    case 'agents':
      return 'agents';
    case 'operation':
    case 'operations':
      return 'operations';
    case 'seed':
    case 'seeds':
    case 'new-seed':
      return 'seeds';
    default:
      return route.name;
  }
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
