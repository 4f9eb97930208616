// A small element builder: the app is a handful of screens, not worth a framework.

type Child = Node | string | null | undefined | false
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value)
    } else if (value === true) {
      el.setAttribute(key, '')
    } else {
      el.setAttribute(key, String(value))
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    el.append(child)
  }
  return el
}

/// Replaces what `parent` shows.
export function show(parent: Element, ...children: Node[]): void {
  parent.replaceChildren(...children)
}

/// A colour for a person, the same every time for the same id: `#rrggbb` (the caret
/// extension takes no other form), dark enough for white text and for a caret on white
/// (WCAG AA for the name labels and avatars).
export function colorFor(id: string): string {
  let hash = 0
  for (const c of id) hash = (hash * 31 + c.charCodeAt(0)) >>> 0
  return hslToHex(hash % 360, 0.65, 0.28)
}

function hslToHex(hue: number, saturation: number, lightness: number): string {
  const a = saturation * Math.min(lightness, 1 - lightness)
  const channel = (n: number) => {
    const k = (n + hue / 30) % 12
    const value = lightness - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))
    return Math.round(value * 255)
      .toString(16)
      .padStart(2, '0')
  }
  return `#${channel(0)}${channel(8)}${channel(4)}`
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean)
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : name.slice(0, 2)
  return letters.toUpperCase()
}

/// What went wrong, as a sentence (what an API call or a browser call threw).
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/// A message the person can read, in a live region.
export function notice(text: string, kind: 'error' | 'info' = 'info'): HTMLElement {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text)
}

/// A form on one line: its fields, a submit button and what submitting does. An error it
/// throws is shown in `status`, or after the form.
export function inlineForm(fields: Node[], submit: string, action: () => Promise<void>, status?: HTMLElement): HTMLFormElement {
  const form = h('form', { class: 'inline' }, ...fields, h('button', { type: 'submit' }, submit))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    try {
      await action()
    } catch (error) {
      const message = notice(errorText(error), 'error')
      if (status) show(status, message)
      else form.append(message)
    }
  })
  return form
}
