// Files in documents: dropped or pasted onto the editor (or picked with *Attach*), sent
// straight to object storage through the presigned URLs the API hands out — one PUT, or
// part by part for large files — with progress shown, completed (the server checks size
// and type), attached to the document, and put in the text: an image where it was
// dropped, anything else as a link. The text keeps the stable address
// `/v1/files/{id}/download`; what the page shows comes from a short-lived URL the API gives
// for it (`?redirect=false`), asked for with the reader's token.

import type { Editor } from '@tiptap/core'
import Image from '@tiptap/extension-image'
import { api } from './api'
import { errorText, h } from './ui'

const FILE_ADDRESS = /^\/v1\/files\/([0-9a-f-]{36})\/download$/

// Short-lived URLs by file, reused until a little before they expire.
const urls = new Map<string, { url: string; until: number }>()

/// The URL that shows a file's bytes now (the address itself for anything not a file of ours).
export async function fileUrl(address: string): Promise<string> {
  const id = address.match(FILE_ADDRESS)?.[1]
  if (!id) return address
  const kept = urls.get(id)
  if (kept && kept.until > Date.now()) return kept.url
  const { url, expires_at } = await api.fileUrl(id)
  urls.set(id, { url, until: new Date(expires_at).getTime() - 30_000 })
  return url
}

/// TipTap's image, shown through `fileUrl` (an `<img>` sends no token).
export const FileImage = Image.extend({
  addNodeView() {
    return ({ node }) => {
      const img = document.createElement('img')
      let shown = ''
      const show = (src: string, alt: string | null) => {
        img.alt = alt ?? ''
        if (src === shown) return
        shown = src
        fileUrl(src)
          .then((url) => {
            if (shown === src) img.src = url
          })
          .catch(() => {
            img.alt = `${alt ?? 'image'} (cannot be shown: you may not have access to the file)`
          })
      }
      show(node.attrs.src, node.attrs.alt)
      return {
        dom: img,
        update(updated) {
          if (updated.type !== node.type) return false
          show(updated.attrs.src, updated.attrs.alt)
          return true
        },
      }
    }
  },
})

/// PUTs `body` to a presigned URL, telling how many bytes went; the answer's ETag.
function put(url: string, body: Blob, progress: (sent: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest()
    request.open('PUT', url)
    request.upload.onprogress = (event) => progress(event.loaded)
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) resolve(request.getResponseHeader('ETag') ?? '')
      else reject(new Error(`the file store answered ${request.status}`))
    }
    request.onerror = () => reject(new Error('the file store cannot be reached'))
    request.send(body)
  })
}

interface Target {
  workspaceId: string
  documentId: string
  editor: Editor
  /** Where the upload list is shown. */
  list: HTMLElement
}

/// Uploads `file`, attaches it to the document and puts it in the text at `at` (or at the
/// selection).
export async function uploadInto(target: Target, file: File, at?: number): Promise<void> {
  const progress = h('progress', { max: 100, value: 0, 'aria-label': `Uploading ${file.name}` })
  const status = h('span', { class: 'meta' }, 'Starting…')
  const row = h('li', {}, h('span', {}, file.name), progress, status)
  target.list.append(row)
  const finish = (text: string, failed: boolean) => {
    progress.remove()
    status.textContent = text
    row.classList.toggle('failed', failed)
    if (!failed) setTimeout(() => row.remove(), 5000)
  }
  try {
    const started = await api.startUpload(target.workspaceId, {
      filename: file.name,
      size: file.size,
      content_type: file.type || 'application/octet-stream',
      document_id: target.documentId,
    })
    const shown = (sent: number) => {
      const percent = file.size === 0 ? 100 : Math.round((sent / file.size) * 100)
      progress.value = percent
      status.textContent = `${percent}%`
    }
    const parts: { number: number; etag: string }[] = []
    if (started.upload.method === 'put') {
      await put(started.upload.url, file, shown)
    } else {
      const size = started.upload.part_size
      for (const part of started.upload.parts) {
        const from = (part.number - 1) * size
        const etag = await put(part.url, file.slice(from, from + size), (sent) => shown(from + sent))
        parts.push({ number: part.number, etag })
      }
    }
    status.textContent = 'Checking…'
    const done = await api.completeUpload(started.id, parts)
    const address = `/v1/files/${started.id}/download`
    const chain = target.editor.chain().focus()
    if (at !== undefined) chain.setTextSelection(at)
    if (done.content_type.startsWith('image/')) {
      chain.setImage({ src: address, alt: started.filename }).run()
    } else {
      chain
        .insertContent([
          { type: 'text', text: started.filename, marks: [{ type: 'link', attrs: { href: address } }] },
          { type: 'text', text: ' ' },
        ])
        .run()
    }
    finish('Attached', false)
  } catch (error) {
    finish(`Not attached: ${errorText(error)}`, true)
  }
}

/// A click on a file's link in the text: the file opens in a new tab (the short-lived URL
/// is asked for after the tab is opened, while the click still allows opening one).
export function openFileLink(address: string): boolean {
  if (!FILE_ADDRESS.test(address)) return false
  const tab = window.open('', '_blank')
  if (tab) tab.opener = null
  fileUrl(address)
    .then((url) => {
      if (tab) tab.location.href = url
      else window.location.href = url
    })
    .catch(() => tab?.close())
  return true
}
