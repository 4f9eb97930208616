// The notification centre: the unread count, live (the server's SSE feed
// /v1/me/notifications/live, read with fetch so the token goes in a header), and the list
// with what each is about; opening one marks it read.

import { api, liveFeed } from './api'
import * as session from './session'
import { errorText, h, notice, show } from './ui'

export interface Notification {
  id: string
  kind: 'mention' | 'reply' | 'share' | 'resolved'
  read: boolean
  created_at: string
  document_id: string
  document_title: string
  excerpt: string | null
  actor: { id: string; name: string | null }
  role?: string | null
}

let unread = 0
let stream: AbortController | null = null
let streamToken: string | null = null
// The bell on screen now (the top bar is rebuilt with each screen: one at a time).
let shown: (() => void) | null = null

function setUnread(count: number): void {
  unread = count
  shown?.()
}

/// One live feed per signed-in session, whatever screen is shown.
function follow(current: session.Session): void {
  if (stream && streamToken === current.token) return
  stream?.abort()
  stream = new AbortController()
  streamToken = current.token
  liveFeed('/v1/me/notifications/live', stream.signal, (message) => {
    if (message.event === 'unread') setUnread(JSON.parse(message.data).unread_count)
    if (message.event === 'notification') shown?.()
  })
}

// A renewed sign-in: the feed goes on with the new token.
window.addEventListener('collab:session', () => {
  const current = session.current()
  if (stream && current) follow(current)
})

export function stopFollowing(): void {
  shown = null
  stream?.abort()
  stream = null
  streamToken = null
}

export function sentence(n: Notification): string {
  const who = n.actor.name ?? n.actor.id
  switch (n.kind) {
    case 'mention':
      return `${who} mentioned you in “${n.document_title}”`
    case 'reply':
      return `${who} replied in “${n.document_title}”`
    case 'share':
      return `${who} shared “${n.document_title}” with you${n.role ? ` (${n.role})` : ''}`
    case 'resolved':
      return `${who} resolved your thread in “${n.document_title}”`
    default:
      return `${who}: “${n.document_title}”`
  }
}

/// The bell for the top bar: the unread count, and the list when pressed.
export function bell(current: session.Session, navigate: (path: string) => void): HTMLElement {
  follow(current)
  const count = h('span', { class: 'badge', 'aria-hidden': 'true' })
  const label = h('span', { class: 'visually-hidden' })
  const button = h('button', { type: 'button', class: 'quiet bell', 'aria-expanded': 'false', 'aria-controls': 'notifications' }, 'Notifications', count, label)
  const list = h('div', { id: 'notifications', class: 'dropdown', hidden: true })
  const render = () => {
    count.textContent = unread > 0 ? String(unread) : ''
    label.textContent = unread > 0 ? `, ${unread} unread` : ''
    if (!list.hidden) void fill()
  }
  const fill = async () => {
    try {
      const { notifications } = await api.notifications()
      const items = notifications.map((n) =>
        h(
          'li',
          { class: n.read ? 'read' : 'unread' },
          h('a', {
            href: `/d/${n.document_id}`,
            onclick: async (event: Event) => {
              event.preventDefault()
              if (!n.read) await api.markRead([n.id]).catch(() => {})
              list.hidden = true
              button.setAttribute('aria-expanded', 'false')
              navigate(`/d/${n.document_id}`)
            },
          }, sentence(n)),
          n.excerpt && h('div', { class: 'meta' }, n.excerpt),
        ),
      )
      show(
        list,
        h('div', { class: 'dropdown-head' }, h('h2', {}, 'Notifications'), h('button', {
          type: 'button',
          class: 'quiet',
          onclick: async () => {
            await api.markAllRead().catch(() => {})
            void fill()
          },
        }, 'Mark all read')),
        items.length ? h('ul', { class: 'plain notifications' }, ...items) : h('p', { class: 'empty' }, 'Nothing yet.'),
      )
    } catch (error) {
      show(list, notice(errorText(error), 'error'))
    }
  }
  button.addEventListener('click', () => {
    list.hidden = !list.hidden
    button.setAttribute('aria-expanded', String(!list.hidden))
    if (!list.hidden) void fill()
  })
  shown = render
  render()
  return h('div', { class: 'bell-wrap' }, button, list)
}
