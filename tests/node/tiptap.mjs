// TipTap's own view of a document, for the export tests: builds the Yjs document that
// @tiptap/extension-collaboration (y-prosemirror, fragment `default`) would hold for a
// ProseMirror JSON document, renders TipTap's HTML for it (`generateHTML`), and compares
// HTML and Markdown with ours after normalising both (CommonMark via commonmark.js).
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
import * as commonmark from 'commonmark'
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
// checkboxes and text; presentational attributes and wrappers dropped. A paragraph that is
// the only content of a list item or table cell is unwrapped (CommonMark's tight lists
// have none), whitespace between blocks ignored.
const KEEP = {
  a: ['href'], img: ['src', 'alt', 'title'], ol: ['start'], input: ['checked'],
  th: [], td: [], code: ['class']
}
const BLOCKS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote', 'pre', 'hr', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'div', 'label'])
const SKIP = new Set(['colgroup', 'col', 'span'])

function normalise (html) {
  const window = new Window()
  const root = window.document.createElement('div')
  root.innerHTML = html
  const walk = (node) => {
    if (node.nodeType === 3) return node.textContent
    if (node.nodeType !== 1) return ''
    let tag = node.tagName.toLowerCase()
    if (tag === 'b') tag = 'strong'
    if (tag === 'i') tag = 'em'
    if (tag === 'del' || tag === 'strike') tag = 's'
    let children = [...node.childNodes].map(walk).filter((c) => c !== '')
    // Whitespace-only text between blocks is formatting.
    if (BLOCKS.has(tag) && tag !== 'pre') children = children.filter((c) => typeof c !== 'string' || c.trim() !== '')
    if (SKIP.has(tag) || tag === 'div' || tag === 'label' || tag === 'thead' || tag === 'tbody') return children.length === 1 ? children[0] : { tag: '#', children }
    if ((tag === 'li' || tag === 'td' || tag === 'th') && children.length >= 1) {
      children = children.flatMap((c) => (c.tag === 'p' ? c.children : c.tag === '#' ? c.children : [c]))
    }
    children = children.flatMap((c) => (c.tag === '#' ? c.children : [c]))
    const attrs = {}
    for (const name of KEEP[tag] ?? []) {
      if (node.hasAttribute(name)) attrs[name] = name === 'checked' ? true : node.getAttribute(name)
    }
    if (tag === 'ol' && attrs.start === '1') delete attrs.start
    // Adjacent text merges.
    const merged = []
    for (const c of children) {
      if (typeof c === 'string' && typeof merged[merged.length - 1] === 'string') merged[merged.length - 1] += c
      else merged.push(c)
    }
    return { tag, attrs, children: merged }
  }
  const out = walk(root)
  return out.children ?? [out]
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
    const reader = new commonmark.Parser()
    const writer = new commonmark.HtmlRenderer()
    const fromMarkdown = normalise(writer.render(reader.parse(command.our_markdown)))
    reply({
      ok: true,
      html_equal: JSON.stringify(theirs) === JSON.stringify(ours),
      markdown_equal: JSON.stringify(theirs) === JSON.stringify(fromMarkdown),
      tiptap: theirs,
      ours,
      markdown: fromMarkdown
    })
  } else {
    reply({ ok: false, error: `unknown op ${command.op}` })
  }
} catch (error) {
  reply({ ok: false, error: String(error?.stack ?? error) })
}
