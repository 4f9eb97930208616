// The panels beside the editor: sharing (members, people, links), history (sessions by
// author, named versions, view, compare, restore) and export. Each uses the public REST
// API only.

import { api, ApiError, type Change, type HistoryEntry } from './api'
import { errorText, h, inlineForm, notice, show } from './ui'

export interface PanelContext {
  documentId: string
  workspaceId: string | null
  role: string
  /** Called after something changed the document's content through the API. */
  changed?: () => void
}

const DOC_ROLES = ['viewer', 'commenter', 'editor', 'owner']
const WORKSPACE_ROLES = ['member', 'guest', 'auditor', 'admin']

function when(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

function roleSelect(id: string, roles: string[], selected: string): HTMLSelectElement {
  return h('select', { id }, ...roles.map((r) => h('option', { value: r, selected: r === selected }, r)))
}

/// A one-line form naming a person (their user id) and a role; the name is cleared once
/// `action` succeeds.
function personAndRoleForm(
  id: string,
  label: string,
  roleLabel: string,
  roles: string[],
  selected: string,
  submit: string,
  status: HTMLElement,
  action: (userId: string, role: string) => Promise<void>,
): HTMLFormElement {
  const person = h('input', { id: `${id}-user`, required: true, placeholder: 'dev-ben-okri', autocomplete: 'off' })
  const role = roleSelect(`${id}-role`, roles, selected)
  return inlineForm(
    [
      h('label', { for: `${id}-user` }, label),
      person,
      h('label', { for: `${id}-role`, class: 'visually-hidden' }, roleLabel),
      role,
    ],
    submit,
    async () => {
      await action(person.value.trim(), role.value)
      person.value = ''
    },
    status,
  )
}

/// Sharing: the workspace's members (add one), the people this document is shared with
/// (add, change, remove), share links (create one; its address is shown once).
export async function sharePanel(ctx: PanelContext): Promise<HTMLElement> {
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'share-title' }, h('h2', { id: 'share-title' }, 'Share'))
  const status = h('div', { 'aria-live': 'polite' })
  const refresh = async () => {
    const parts: Node[] = []
    try {
      const permissions = await api.permissions(ctx.documentId)
      const canShare = permissions.role === 'owner'
      parts.push(
        h('p', {}, `Your role: ${permissions.role}. Workspace members: ${permissions.default_member_role ?? 'no access'} unless shared otherwise.`),
      )
      const list = h('ul', { class: 'plain', 'aria-label': 'Shared with' })
      for (const share of permissions.shares) {
        list.append(
          h(
            'li',
            {},
            h('span', {}, `${share.principal.replace(/^user:/, '')} — ${share.role}`),
            canShare &&
              h('button', {
                type: 'button',
                class: 'quiet',
                onclick: async () => {
                  await api.unshare(ctx.documentId, share.principal).catch((e) => show(status, notice(errorText(e), 'error')))
                  void refresh()
                },
              }, 'Remove'),
          ),
        )
      }
      if (permissions.shares.length === 0) list.append(h('li', { class: 'empty' }, 'Not shared with anyone in particular.'))
      parts.push(h('h3', {}, 'People'), list)
      if (canShare) {
        parts.push(
          personAndRoleForm('share', 'Share with (user id)', 'Role', DOC_ROLES, 'editor', 'Share', status, async (userId, role) => {
            await api.share(ctx.documentId, userId, role)
            show(status, notice('Shared.'))
            void refresh()
          }),
        )
        const links = h('ul', { class: 'plain', 'aria-label': 'Share links' })
        for (const link of permissions.links) {
          links.append(
            h(
              'li',
              {},
              h('span', {}, `A ${link.role} link${link.expires_at ? `, until ${when(link.expires_at)}` : ''}`),
              h('button', {
                type: 'button',
                class: 'quiet',
                onclick: async () => {
                  await api.revokeLink(ctx.documentId, link.id).catch((e) => show(status, notice(errorText(e), 'error')))
                  void refresh()
                },
              }, 'Revoke'),
            ),
          )
        }
        const linkRole = roleSelect('link-role', ['viewer', 'commenter', 'editor'], 'viewer')
        parts.push(
          h('h3', {}, 'Links'),
          links,
          inlineForm(
            [h('label', { for: 'link-role' }, 'New link for'), linkRole],
            'Create link',
            async () => {
              const created = await api.createLink(ctx.documentId, linkRole.value)
              const address = `${location.origin}/d/${ctx.documentId}?link=${encodeURIComponent(created.token)}`
              show(
                status,
                h(
                  'div',
                  { class: 'notice info', role: 'status' },
                  h('label', { for: 'new-link' }, 'Anyone signed in with this address gets its role (shown once):'),
                  h('input', { id: 'new-link', readonly: true, value: address, onfocus: (e: Event) => (e.target as HTMLInputElement).select() }),
                ),
              )
              void refresh()
            },
            status,
          ),
        )
      }
    } catch (error) {
      parts.push(notice(errorText(error), 'error'))
    }
    if (ctx.workspaceId) parts.push(await membersSection(ctx.workspaceId, status))
    show(panel, h('h2', { id: 'share-title' }, 'Share'), ...parts, status)
  }
  await refresh()
  return panel
}

async function membersSection(workspaceId: string, status: HTMLElement): Promise<HTMLElement> {
  const section = h('div', {}, h('h3', {}, 'Workspace members'))
  try {
    const { members } = await api.members(workspaceId)
    section.append(
      h('ul', { class: 'plain', 'aria-label': 'Workspace members' }, ...members.map((m) => h('li', {}, `${m.display_name ?? m.user_id} (${m.user_id}) — ${m.role}`))),
    )
  } catch (error) {
    // Only owners and admins list members: say nothing more to the others.
    if (!(error instanceof ApiError) || error.status !== 403) section.append(notice(errorText(error), 'error'))
    return section
  }
  section.append(
    personAndRoleForm('member', 'Add member (user id)', 'Workspace role', WORKSPACE_ROLES, 'member', 'Add', status, async (userId, role) => {
      await api.addMember(workspaceId, userId, role)
      show(status, notice(`${userId} added to the workspace.`))
    }),
  )
  return section
}

function entryLabel(raw: HistoryEntry): string {
  // Actors are principals (`user:ada`); people read the id.
  const entry = { ...raw, actor: raw.actor.replace(/^user:/, '') }
  switch (entry.kind) {
    case 'edits':
      return `${entry.actor} edited: ${entry.edits} change${entry.edits === 1 ? '' : 's'}, +${entry.inserted} −${entry.deleted}`
    case 'restored':
      return `${entry.actor} restored an earlier version`
    case 'VersionNamed':
      return `${entry.actor} named version “${String(entry.details.name ?? '')}”`
    default:
      return `${entry.actor}: ${entry.kind.replace(/^Document/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()}`
  }
}

function renderChanges(changes: Change[]): HTMLElement {
  const out = h('div', { class: 'diff', 'aria-label': 'Changes' })
  for (const change of changes) {
    if (change.op === 'equal') out.append(change.text)
    else if (change.op === 'delete') out.append(h('del', {}, change.text))
    else {
      for (const part of change.authors ?? [{ text: change.text, actor: null }]) {
        out.append(h('ins', { title: part.actor ? `written by ${part.actor}` : 'inserted' }, part.text))
      }
    }
  }
  return out
}

/// History: sessions by author and named versions, newest first; view a point, compare it
/// with now (attributed), restore it (one forward edit everyone receives); name the
/// current version.
export async function historyPanel(ctx: PanelContext): Promise<HTMLElement> {
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'history-title' })
  const detail = h('div', { class: 'detail', 'aria-live': 'polite' })
  const canEdit = ['editor', 'owner'].includes(ctx.role)
  const refresh = async () => {
    const list = h('ol', { class: 'history', 'aria-label': 'History, newest first' })
    try {
      const { entries } = await api.history(ctx.documentId)
      for (const entry of entries) {
        const version = entry.last_version
        const item = h('li', {}, h('div', {}, entryLabel(entry)), h('div', { class: 'meta' }, when(entry.ended_at)))
        if (version !== null && (entry.kind === 'edits' || entry.kind === 'restored' || entry.kind === 'VersionNamed')) {
          const actions = h('div', { class: 'actions' })
          actions.append(
            h('button', {
              type: 'button',
              class: 'quiet',
              onclick: async () => {
                try {
                  const text = await api.textAt(ctx.documentId, version)
                  show(detail, h('h3', {}, `As it was at version ${version}`), h('pre', { class: 'snapshot' }, text))
                } catch (error) {
                  show(detail, notice(errorText(error), 'error'))
                }
              },
            }, 'View'),
            h('button', {
              type: 'button',
              class: 'quiet',
              onclick: async () => {
                try {
                  const diff = await api.diff(ctx.documentId, version)
                  show(detail, h('h3', {}, `From version ${version} to now: +${diff.inserted} −${diff.deleted}`), renderChanges(diff.changes))
                } catch (error) {
                  show(detail, notice(errorText(error), 'error'))
                }
              },
            }, 'Compare with now'),
          )
          if (canEdit) {
            actions.append(
              h('button', {
                type: 'button',
                class: 'quiet',
                'data-version': version,
                onclick: async () => {
                  try {
                    await api.restore(ctx.documentId, version)
                    show(detail, notice(`Restored to version ${version}; everyone editing sees it now.`))
                    ctx.changed?.()
                    void refresh()
                  } catch (error) {
                    show(detail, notice(errorText(error), 'error'))
                  }
                },
              }, 'Restore'),
            )
          }
          item.append(actions)
        }
        list.append(item)
      }
      if (entries.length === 0) list.append(h('li', { class: 'empty' }, 'Nothing yet.'))
    } catch (error) {
      list.append(h('li', {}, notice(errorText(error), 'error')))
    }
    const parts: Node[] = [h('h2', { id: 'history-title' }, 'History')]
    if (canEdit) {
      const name = h('input', { id: 'version-name', required: true, maxlength: 100, placeholder: 'Draft for review' })
      parts.push(
        inlineForm(
          [h('label', { for: 'version-name' }, 'Name this version'), name],
          'Save name',
          async () => {
            await api.nameVersion(ctx.documentId, name.value.trim())
            name.value = ''
            void refresh()
          },
          detail,
        ),
      )
    }
    show(panel, ...parts, list, detail)
  }
  await refresh()
  return panel
}

/// Export: Markdown, HTML or plain text, as the server renders the document now.
export function exportPanel(ctx: PanelContext, title: string): HTMLElement {
  const status = h('div', { 'aria-live': 'polite' })
  const download = async (format: 'md' | 'html' | 'txt') => {
    try {
      const response = await api.export(ctx.documentId, format)
      const blob = await response.blob()
      const url = URL.createObjectURL(blob)
      const safe = title.replace(/[^\p{L}\p{N} ._-]+/gu, '').trim() || 'document'
      const a = h('a', { href: url, download: `${safe}.${format}` })
      document.body.append(a)
      a.click()
      a.remove()
      setTimeout(() => URL.revokeObjectURL(url), 10_000)
      show(status, notice(`Exported as ${format.toUpperCase()}.`))
    } catch (error) {
      show(status, notice(errorText(error), 'error'))
    }
  }
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': 'export-title' },
    h('h2', { id: 'export-title' }, 'Export'),
    h(
      'div',
      { class: 'inline' },
      h('button', { type: 'button', onclick: () => download('md') }, 'Markdown'),
      h('button', { type: 'button', onclick: () => download('html') }, 'HTML'),
      h('button', { type: 'button', onclick: () => download('txt') }, 'Text'),
    ),
    status,
  )
}
