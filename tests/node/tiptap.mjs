// TipTap's own view of a document, for the export tests: builds the Yjs document that
// @tiptap/extension-collaboration (y-prosemirror, fragment `default`) would hold for a
// ProseMirror JSON document, renders TipTap's HTML for it (`generateHTML`), and compares
// HTML and Markdown with ours after normalising both (Markdown read by markdown-it:
// CommonMark with GitHub's tables and strikethrough).
// One JSON command on stdin, one JSON answer on stdout.
import * as Y from 'yjs'
import { getSchema } from '@tiptap/core'
import { generateHTML } from '@tiptap/html'
import StarterKit from '@tiptap/starter-kit'
import { TaskList, TaskItem } from '@tiptap/extension-list'
import Image from '@tiptap/extension-image'
import { Table, TableRow, TableHeader, TableCell } from '@tiptap/extension-table'
import { Node } from '@tiptap/pm/model'
import { prosemirrorToYXmlFragment } from 'y-prosemirror'
import MarkdownIt from 'markdown-it'
import { Window } from 'happy-dom'

export const extensions = [
  StarterKit,
  TaskList,
  TaskItem.configure({ nested: true }),
  Image,
  Table,
  TableRow,
  TableHeader,
  TableCell
]

const schema = getSchema(extensions)

// What a reader sees, whatever the markup: block structure, marks, links, images,
// checkboxes and text; presentational attributes and wrappers dropped. A paragraph in a
// list item or table cell is unwrapped (CommonMark's tight lists have none), empty
// paragraphs and whitespace between blocks are ignored, whitespace runs in text collapse,
// adjacent elements of one kind merge (<b>a</b><b>b</b> is <b>ab</b>), a link without a
// URL is its text.
const KEEP = {
  a: ['href'], img: ['src', 'alt', 'title'], ol: ['start'], input: ['checked'],
  th: [], td: [], code: ['class']
}
const BLOCKS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote', 'pre', 'table', 'tr', 'th', 'td', 'div', 'label'])
const UNWRAP = new Set(['colgroup', 'col', 'span', 'div', 'label', 'thead', 'tbody', 'body', 'html'])
const isBlock = (c) => typeof c !== 'string' && (BLOCKS.has(c.tag) || c.tag === 'br' || c.tag === 'hr')

function tidy (tag, children) {
  // Adjacent text merges; adjacent equal elements merge.
  const merged = []
  for (const c of children) {
    const last = merged[merged.length - 1]
    if (typeof c === 'string' && typeof last === 'string') merged[merged.length - 1] = last + c
    else if (typeof c !== 'string' && typeof last === 'object' && last.tag === c.tag && !BLOCKS.has(c.tag) &&
      c.tag !== 'br' && c.tag !== 'img' && c.tag !== 'input' && JSON.stringify(last.attrs) === JSON.stringify(c.attrs)) {
      merged[merged.length - 1] = { ...last, children: tidy(c.tag, [...last.children, ...c.children]) }
    } else merged.push(c)
  }
  if (tag === 'pre' || tag === 'code') return merged
  // Whitespace: collapsed, trimmed at the edges of blocks and next to block children.
  const out = []
  merged.forEach((c, i) => {
    if (typeof c !== 'string') return out.push(c)
    let t = c.replace(/\s+/g, ' ')
    const blockish = BLOCKS.has(tag) || tag === '#'
    if (blockish && (i === 0 || isBlock(merged[i - 1]))) t = t.replace(/^ /, '')
    if (blockish && (i === merged.length - 1 || isBlock(merged[i + 1]))) t = t.replace(/ $/, '')
    if (t !== '') out.push(t)
  })
  return out
}

function normalise (html) {
  const body = html.includes('<body>') ? html.slice(html.indexOf('<body>') + 6, html.lastIndexOf('</body>')) : html
  const window = new Window()
  const root = window.document.createElement('div')
  root.innerHTML = body
  const walk = (node) => {
    if (node.nodeType === 3) return node.textContent
    if (node.nodeType !== 1) return ''
    let tag = node.tagName.toLowerCase()
    if (tag === 'b') tag = 'strong'
    if (tag === 'i') tag = 'em'
    if (tag === 'del' || tag === 'strike') tag = 's'
    let children = [...node.childNodes].map(walk).filter((c) => c !== '')
    children = children.flatMap((c) => (c.tag === '#' ? c.children : [c]))
    if (UNWRAP.has(tag)) return { tag: '#', children }
    if (tag === 'li' || tag === 'td' || tag === 'th') {
      children = children.flatMap((c) => (c.tag === 'p' ? c.children : [c]))
    }
    if (tag === 'pre' && children.length === 1 && children[0].tag === 'code') {
      const code = children[0]
      code.children = code.children.map((t) => (typeof t === 'string' ? t.replace(/\n$/, '') : t))
    }
    const attrs = {}
    for (const name of KEEP[tag] ?? []) {
      if (node.hasAttribute(name) && node.getAttribute(name) !== '') attrs[name] = name === 'checked' ? true : node.getAttribute(name)
    }
    if (tag === 'ol' && attrs.start === '1') delete attrs.start
    if (tag === 'a' && !attrs.href) return { tag: '#', children }
    children = tidy(tag, children)
    if (tag === 'p' && children.length === 0) return ''
    return { tag, attrs, children }
  }
  const top = walk(root)
  return tidy('#', top.children ?? [top])
}

// Markdown has no checkbox: GitHub's "[x] " is text to a CommonMark reader.
function checkboxesAsText (nodes) {
  return nodes.map((n) => {
    if (typeof n === 'string' || n.tag === 'pre') return n
    if (n.tag === 'input') return n.attrs.checked ? '[x] ' : '[ ] '
    return { ...n, children: tidy(n.tag, checkboxesAsText(n.children)) }
  })
}

const reply = (value) => process.stdout.write(JSON.stringify(value) + '\n')
let input = ''
for await (const chunk of process.stdin) input += chunk
const command = JSON.parse(input)
try {
  if (command.op === 'build') {
    const node = Node.fromJSON(schema, command.doc)
    const ydoc = new Y.Doc()
    prosemirrorToYXmlFragment(node, ydoc.getXmlFragment('default'))
    reply({
      ok: true,
      update: Buffer.from(Y.encodeStateAsUpdate(ydoc)).toString('base64'),
      html: generateHTML(command.doc, extensions)
    })
  } else if (command.op === 'compare') {
    const theirs = normalise(command.tiptap_html)
    const ours = normalise(command.our_html)
    const fromMarkdown = normalise(new MarkdownIt().render(command.our_markdown))
    const theirsAsMarkdown = tidy('#', checkboxesAsText(theirs))
    reply({
      ok: true,
      html_equal: JSON.stringify(theirs) === JSON.stringify(ours),
      markdown_equal: JSON.stringify(theirsAsMarkdown) === JSON.stringify(fromMarkdown),
      tiptap: theirs,
      tiptap_as_markdown: theirsAsMarkdown,
      ours,
      markdown: fromMarkdown
    })
  } else {
    reply({ ok: false, error: `unknown op ${command.op}` })
  }
} catch (error) {
  reply({ ok: false, error: String(error?.stack ?? error) })
}
