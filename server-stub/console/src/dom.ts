/**
 * A tiny element builder. Text always goes in through text nodes and attributes through
 * setAttribute, never innerHTML, so data from the API can never become markup.
 */
export type Child = Node | string | number | null | undefined | false | readonly Child[];
type AttrValue = string | number | boolean | null | undefined;
export type Attrs = Record<string, AttrValue | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      el.addEventListener(key.replace(/^on/, '').toLowerCase(), value);
    } else if (key === 'testid') {
      if (value !== null && value !== undefined && value !== false) el.setAttribute('data-testid', String(value));
    } else if (value === true) {
      el.setAttribute(key, '');
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

export function link(href: string, text: string, testid?: string): HTMLAnchorElement {
  return h('a', { href, testid }, text);
}

/** A `<select>` whose options are rebuilt without losing the current choice. */
export function setOptions(select: HTMLSelectElement, groups: readonly { label?: string; options: readonly { value: string; text: string; disabled?: boolean }[] }[]): void {
  const current = select.value;
  select.replaceChildren();
  for (const group of groups) {
    const parent: HTMLElement = group.label === undefined ? select : select.appendChild(h('optgroup', { label: group.label }));
    for (const option of group.options) parent.appendChild(h('option', { value: option.value, disabled: option.disabled }, option.text));
  }
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}
