//! Documents as files. A `Y.XmlFragment` written by TipTap / ProseMirror through
//! y-prosemirror (the `default` fragment of `@tiptap/extension-collaboration`) is read into
//! ProseMirror's shape — block elements named after their node types with their attributes,
//! text runs with their marks as formatting attributes — and written as CommonMark (with
//! GitHub's tables, strikethrough and task items), as HTML that matches TipTap's own
//! `generateHTML` for the same content, as plain text, or as ProseMirror JSON. A `Y.Text`
//! root is its text (Markdown as is). HTML is escaped throughout, and a link or image whose
//! URL is not http(s), mailto, tel or relative loses it (`javascript:` never gets through).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use yrs::types::text::YChange;
use yrs::types::xml::{Xml, XmlFragment, XmlOut};
use yrs::{Any, Doc, Number, Out, ReadTxn, Text, Transact, XmlFragmentRef, XmlTextRef};

use crate::content::{root_kind, RootKind};

/// What a document exports as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Text,
    Json,
}

impl Format {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "md" | "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            "txt" | "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Text => "txt",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
            Format::Text => "text/plain; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// Why a document cannot be exported as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("the document has several roots ({0}); pass root= one of them")]
    WhichRoot(String),
    #[error("root '{0}' is a {1}; only text and XML fragment roots export")]
    NotExportable(String, &'static str),
}

/// A ProseMirror node as y-prosemirror stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element {
        name: String,
        attrs: BTreeMap<String, Any>,
        children: Vec<Node>,
    },
    Text(Vec<Run>),
}

/// Text with one set of marks (mark name → its attributes, as y-prosemirror stores them).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub text: String,
    pub marks: BTreeMap<String, Any>,
}

/// The root to export: `root` if given; else the `default` XML fragment (TipTap's), else
/// the only root. A document without roots exports as empty text.
pub fn choose_root(doc: &Doc, root: Option<&str>) -> Result<(String, RootKind), ExportError> {
    let txn = doc.transact();
    let roots: Vec<(String, RootKind)> = txn
        .root_refs()
        .map(|(name, out)| (name.to_owned(), root_kind(&out, &txn)))
        .collect();
    let found = match root {
        Some(name) => roots
            .iter()
            .find(|(n, _)| n == name)
            .cloned()
            .unwrap_or((name.to_owned(), RootKind::Text)),
        None => match roots
            .iter()
            .find(|(n, k)| n == "default" && *k == RootKind::Xml)
        {
            Some(default) => default.clone(),
            None => match roots.as_slice() {
                [] => ("text".to_owned(), RootKind::Text),
                [one] => one.clone(),
                several => {
                    let mut names: Vec<&str> = several.iter().map(|(n, _)| n.as_str()).collect();
                    names.sort();
                    return Err(ExportError::WhichRoot(names.join(", ")));
                }
            },
        },
    };
    match found.1 {
        RootKind::Map | RootKind::Array => {
            Err(ExportError::NotExportable(found.0, found.1.as_str()))
        }
        _ => Ok(found),
    }
}

/// The document (its chosen root) in `format`.
pub fn export(doc: &Doc, root: Option<&str>, format: Format) -> Result<String, ExportError> {
    let (name, kind) = choose_root(doc, root)?;
    if kind == RootKind::Text {
        let text = crate::content::to_text(doc, Some(&name));
        return Ok(match format {
            Format::Markdown | Format::Text => text,
            Format::Html => text_as_html(&text),
            Format::Json => json!({ "type": "text", "text": text }).to_string(),
        });
    }
    let nodes = read_fragment(doc, &name);
    Ok(match format {
        Format::Markdown => to_markdown(&nodes),
        Format::Html => to_html(&nodes),
        Format::Text => to_plain(&nodes),
        Format::Json => to_prosemirror_json(&nodes).to_string(),
    })
}

/// The XML root `name` as ProseMirror nodes.
pub fn read_fragment(doc: &Doc, name: &str) -> Vec<Node> {
    let fragment: XmlFragmentRef = doc.get_or_insert_xml_fragment(name);
    let txn = doc.transact();
    fragment
        .children(&txn)
        .map(|c| read_node(c, &txn))
        .collect()
}

fn read_node<T: ReadTxn>(node: XmlOut, txn: &T) -> Node {
    match node {
        XmlOut::Element(element) => Node::Element {
            name: element.tag().to_string(),
            attrs: element
                .attributes(txn)
                .map(|(k, v)| (k.to_owned(), out_to_any(v, txn)))
                .collect(),
            children: element.children(txn).map(|c| read_node(c, txn)).collect(),
        },
        XmlOut::Fragment(fragment) => Node::Element {
            name: "fragment".into(),
            attrs: BTreeMap::new(),
            children: fragment.children(txn).map(|c| read_node(c, txn)).collect(),
        },
        XmlOut::Text(text) => Node::Text(read_runs(&text, txn)),
    }
}

fn out_to_any<T: ReadTxn>(value: Out, txn: &T) -> Any {
    match value {
        Out::Any(any) => any,
        other => Any::String(other.to_string(txn).into()),
    }
}

fn read_runs<T: ReadTxn>(text: &XmlTextRef, txn: &T) -> Vec<Run> {
    text.diff(txn, YChange::identity)
        .into_iter()
        .filter_map(|chunk| match chunk.insert {
            Out::Any(Any::String(s)) => Some(Run {
                text: s.to_string(),
                marks: chunk
                    .attributes
                    .map(|attrs| {
                        attrs
                            .iter()
                            .filter(|(_, v)| !matches!(v, Any::Null | Any::Undefined))
                            .map(|(k, v)| (k.to_string(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            _ => None,
        })
        .collect()
}

fn attr_str(attrs: &BTreeMap<String, Any>, name: &str) -> Option<String> {
    match attrs.get(name)? {
        Any::String(s) => Some(s.to_string()),
        Any::Number(n) => Some(n.to_string()),
        Any::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attr_i64(attrs: &BTreeMap<String, Any>, name: &str) -> Option<i64> {
    match attrs.get(name)? {
        Any::Number(Number::Int(n)) => Some(*n),
        Any::Number(Number::Float(f)) => Some(*f as i64),
        Any::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn attr_true(attrs: &BTreeMap<String, Any>, name: &str) -> bool {
    matches!(attrs.get(name), Some(Any::Bool(true)))
        || attr_str(attrs, name).as_deref() == Some("true")
}

/// A URL fit for `href` / `src`: http(s), mailto, tel, or relative; anything else (a
/// `javascript:` or `data:` URL, a scheme hidden behind control characters) is refused.
pub fn safe_url(raw: &str) -> Option<String> {
    let url = raw.trim();
    if url.is_empty() || url.chars().any(|c| c.is_control()) {
        return None;
    }
    // Before the first `/`, `?` or `#` is where a scheme would be: an entity there
    // (`javascript&colon;`) is a scheme in disguise, since Markdown readers decode entities.
    let head = &url[..url.find(['/', '?', '#']).unwrap_or(url.len())];
    if head.contains('&') {
        return None;
    }
    match url.find(':') {
        Some(colon) if !url[..colon].contains(['/', '?', '#']) => {
            let scheme = url[..colon].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto" | "tel").then(|| url.to_owned())
        }
        _ => Some(url.to_owned()),
    }
}

/// The marks this exporter writes, outermost first: ProseMirror's order for TipTap's
/// schema (link has the highest priority, then the starter kit's order).
const MARKS: [&str; 6] = ["link", "bold", "code", "italic", "strike", "underline"];

fn marks_of(run: &Run) -> Vec<(&'static str, Option<&Any>)> {
    MARKS
        .iter()
        .filter_map(|m| run.marks.get(*m).map(|v| (*m, Some(v))))
        .collect()
}

fn link_href(attrs: Option<&Any>) -> Option<String> {
    match attrs? {
        Any::Map(map) => match map.get("href")? {
            Any::String(href) => safe_url(href),
            _ => None,
        },
        _ => None,
    }
}

fn link_title(attrs: Option<&Any>) -> Option<String> {
    match attrs? {
        Any::Map(map) => match map.get("title")? {
            Any::String(title) => Some(title.to_string()),
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------- HTML

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain text as HTML: paragraphs at blank lines, line breaks kept.
fn text_as_html(text: &str) -> String {
    let body: String = text
        .split("\n\n")
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", escape_html(p).replace('\n', "<br>")))
        .collect();
    html_page(&body)
}

fn html_page(body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"></head><body>{body}</body></html>\n"
    )
}

/// The nodes as an HTML page whose body is what TipTap's `generateHTML` writes.
pub fn to_html(nodes: &[Node]) -> String {
    let mut body = String::new();
    for node in nodes {
        html_node(node, &mut body);
    }
    html_page(&body)
}

fn html_children(children: &[Node], out: &mut String) {
    for child in children {
        html_node(child, out);
    }
}

fn html_node(node: &Node, out: &mut String) {
    let (name, attrs, children) = match node {
        Node::Text(runs) => return html_runs(runs, out),
        Node::Element {
            name,
            attrs,
            children,
        } => (name.as_str(), attrs, children),
    };
    let wrap = |out: &mut String, open: &str, close: &str| {
        out.push_str(open);
        html_children(children, out);
        out.push_str(close);
    };
    match name {
        "paragraph" => wrap(out, "<p>", "</p>"),
        "heading" => {
            let level = attr_i64(attrs, "level").unwrap_or(1).clamp(1, 6);
            wrap(out, &format!("<h{level}>"), &format!("</h{level}>"))
        }
        "blockquote" => wrap(out, "<blockquote>", "</blockquote>"),
        "bulletList" => wrap(out, "<ul>", "</ul>"),
        "orderedList" => match attr_i64(attrs, "start").filter(|s| *s != 1) {
            Some(start) => wrap(out, &format!("<ol start=\"{start}\">"), "</ol>"),
            None => wrap(out, "<ol>", "</ol>"),
        },
        "listItem" => wrap(out, "<li>", "</li>"),
        "taskList" => wrap(out, "<ul data-type=\"taskList\">", "</ul>"),
        "taskItem" => {
            let checked = attr_true(attrs, "checked");
            let open = format!(
                "<li data-checked=\"{checked}\" data-type=\"taskItem\"><label><input type=\"checkbox\"{}><span></span></label><div>",
                if checked { " checked=\"checked\"" } else { "" }
            );
            wrap(out, &open, "</div></li>")
        }
        "codeBlock" => {
            let language = attr_str(attrs, "language").filter(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-_#.".contains(c))
            });
            match language {
                Some(l) => out.push_str(&format!("<pre><code class=\"language-{l}\">")),
                None => out.push_str("<pre><code>"),
            }
            out.push_str(&escape_html(&plain_text(children)));
            out.push_str("</code></pre>");
        }
        "horizontalRule" => out.push_str("<hr>"),
        "hardBreak" => out.push_str("<br>"),
        "image" => {
            out.push_str("<img");
            if let Some(src) = attr_str(attrs, "src").and_then(|s| safe_url(&s)) {
                out.push_str(&format!(" src=\"{}\"", escape_html(&src)));
            }
            for name in ["alt", "title"] {
                if let Some(value) = attr_str(attrs, name) {
                    out.push_str(&format!(" {name}=\"{}\"", escape_html(&value)));
                }
            }
            out.push('>');
        }
        "table" => wrap(out, "<table><tbody>", "</tbody></table>"),
        "tableRow" => wrap(out, "<tr>", "</tr>"),
        "tableHeader" | "tableCell" => {
            let tag = if name == "tableHeader" { "th" } else { "td" };
            let mut open = format!("<{tag}");
            for span in ["colspan", "rowspan"] {
                if let Some(n) = attr_i64(attrs, span).filter(|n| *n > 1) {
                    open.push_str(&format!(" {span}=\"{n}\""));
                }
            }
            open.push('>');
            wrap(out, &open, &format!("</{tag}>"))
        }
        // A node this exporter does not know: its content, without markup.
        _ => html_children(children, out),
    }
}

/// Text runs with their marks, keeping a mark open across runs that share it (as
/// ProseMirror's serializer does).
fn html_runs(runs: &[Run], out: &mut String) {
    let mut open: Vec<(&'static str, Option<&Any>)> = vec![];
    for run in runs {
        let marks = marks_of(run);
        let keep = open
            .iter()
            .zip(&marks)
            .take_while(|(a, b)| a.0 == b.0 && a.1 == b.1)
            .count();
        while open.len() > keep {
            let (mark, _) = open.pop().expect("longer than keep");
            out.push_str(html_close(mark));
        }
        for (mark, attrs) in &marks[keep..] {
            out.push_str(&html_open(mark, *attrs));
            open.push((mark, *attrs));
        }
        out.push_str(&escape_html(&run.text));
    }
    while let Some((mark, _)) = open.pop() {
        out.push_str(html_close(mark));
    }
}

fn html_open(mark: &str, attrs: Option<&Any>) -> String {
    match mark {
        "link" => {
            let mut a = String::from("<a target=\"_blank\" rel=\"noopener noreferrer nofollow\"");
            if let Some(href) = link_href(attrs) {
                a.push_str(&format!(" href=\"{}\"", escape_html(&href)));
            }
            if let Some(title) = link_title(attrs) {
                a.push_str(&format!(" title=\"{}\"", escape_html(&title)));
            }
            a.push('>');
            a
        }
        "bold" => "<strong>".into(),
        "code" => "<code>".into(),
        "italic" => "<em>".into(),
        "strike" => "<s>".into(),
        _ => "<u>".into(),
    }
}

fn html_close(mark: &str) -> &'static str {
    match mark {
        "link" => "</a>",
        "bold" => "</strong>",
        "code" => "</code>",
        "italic" => "</em>",
        "strike" => "</s>",
        _ => "</u>",
    }
}

// ------------------------------------------------------------------------------ Markdown

/// Backslash-escapes what CommonMark would read as markup in running text.
fn escape_markdown(text: &str, at_line_start: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut line_start = at_line_start;
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '!'
        ) || (line_start && matches!(c, '#' | '-' | '+' | '='))
        {
            out.push('\\');
        }
        out.push(c);
        line_start = c == '\n';
    }
    // "1. " or "1) " at the start of a line would start a list.
    if at_line_start {
        if let Some(end) = out.find(|c: char| !c.is_ascii_digit()) {
            if end > 0 && matches!(out[end..].chars().next(), Some('.' | ')')) {
                out.insert(end, '\\');
            }
        }
    }
    out
}

/// Line breaks inside inline Markdown would end the paragraph (and a blank line could start
/// raw HTML): inline content is one line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn code_span(text: &str) -> String {
    let text = one_line(text);
    let text = text.as_str();
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn md_url(url: &str) -> String {
    if url.contains([' ', '(', ')', '<', '>']) {
        format!("<{}>", url.replace('<', "%3C").replace('>', "%3E"))
    } else {
        url.to_owned()
    }
}

fn md_title(title: &str) -> String {
    format!(
        " \"{}\"",
        one_line(title)
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('<', "\\<")
            .replace('>', "\\>")
    )
}

/// The nodes as CommonMark (GitHub's tables, strikethrough and task items).
pub fn to_markdown(nodes: &[Node]) -> String {
    let mut out = md_blocks(nodes, false);
    out.push('\n');
    out
}

/// Blocks separated by a blank line (a single newline when `tight`).
fn md_blocks(nodes: &[Node], tight: bool) -> String {
    let rendered: Vec<String> = nodes
        .iter()
        .map(md_block)
        .filter(|b| !b.is_empty())
        .collect();
    rendered.join(if tight { "\n" } else { "\n\n" })
}

fn indent_rest(text: &str, indent: &str) -> String {
    let mut lines = text.split('\n');
    let mut out = lines.next().unwrap_or("").to_owned();
    for line in lines {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}

fn md_block(node: &Node) -> String {
    let (name, attrs, children) = match node {
        Node::Text(runs) => return md_inline_runs(runs, true),
        Node::Element {
            name,
            attrs,
            children,
        } => (name.as_str(), attrs, children),
    };
    match name {
        "paragraph" => md_inline(children),
        "heading" => {
            let level = attr_i64(attrs, "level").unwrap_or(1).clamp(1, 6) as usize;
            format!(
                "{} {}",
                "#".repeat(level),
                md_inline(children).replace('\n', " ")
            )
        }
        "blockquote" => md_blocks(children, false)
            .split('\n')
            .map(|l| {
                if l.is_empty() {
                    ">".to_owned()
                } else {
                    format!("> {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "bulletList" | "orderedList" | "taskList" => {
            let start = attr_i64(attrs, "start").unwrap_or(1);
            // Tight unless an item holds more than one paragraph.
            let tight = children.iter().all(|item| match item {
                Node::Element { children, .. } => {
                    children
                        .iter()
                        .filter(|c| matches!(c, Node::Element { name, .. } if name == "paragraph"))
                        .count()
                        <= 1
                }
                Node::Text(_) => true,
            });
            let items: Vec<String> = children
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let marker = match name {
                        "orderedList" => format!("{}. ", start.saturating_add(i as i64)),
                        _ => "- ".to_owned(),
                    };
                    let (task, content) = match item {
                        Node::Element {
                            name,
                            attrs,
                            children,
                        } => (
                            (name == "taskItem").then(|| attr_true(attrs, "checked")),
                            md_blocks(children, tight),
                        ),
                        Node::Text(runs) => (None, md_inline_runs(runs, true)),
                    };
                    let task = match task {
                        Some(true) => "[x] ",
                        Some(false) => "[ ] ",
                        None => "",
                    };
                    let indent = " ".repeat(marker.len());
                    format!("{marker}{task}{}", indent_rest(&content, &indent))
                })
                .collect();
            items.join(if tight { "\n" } else { "\n\n" })
        }
        "codeBlock" => {
            let code = plain_text(children);
            let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat(longest.max(2) + 1);
            let language = attr_str(attrs, "language")
                .filter(|l| !l.contains(['`', ' ', '\n']))
                .unwrap_or_default();
            format!("{fence}{language}\n{code}\n{fence}")
        }
        "horizontalRule" => "---".into(),
        "table" => md_table(children),
        // Inline nodes met at block level, and unknown nodes: their content.
        "hardBreak" | "image" => md_inline(std::slice::from_ref(node)),
        _ => md_blocks(children, false),
    }
}

fn md_table(rows: &[Node]) -> String {
    let cells = |row: &Node| -> Vec<String> {
        match row {
            Node::Element { children, .. } => children
                .iter()
                .map(|cell| match cell {
                    Node::Element { children, .. } => children
                        .iter()
                        .map(|p| match p {
                            Node::Element { children, .. } => md_inline(children),
                            Node::Text(runs) => md_inline_runs(runs, false),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                        .replace('\n', " "),
                    Node::Text(runs) => md_inline_runs(runs, false),
                })
                .collect(),
            Node::Text(_) => vec![],
        }
    };
    let rows: Vec<Vec<String>> = rows.iter().map(cells).collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return String::new();
    }
    let line = |row: &Vec<String>| {
        let mut cells = row.clone();
        cells.resize(width, String::new());
        format!("| {} |", cells.join(" | "))
    };
    let mut out = vec![line(&rows[0]), format!("|{}", " --- |".repeat(width))];
    out.extend(rows[1..].iter().map(line));
    out.join("\n")
}

/// A block's inline content: text runs, hard breaks and images.
fn md_inline(children: &[Node]) -> String {
    let mut out = String::new();
    for child in children {
        match child {
            Node::Text(runs) => {
                out.push_str(&md_inline_runs(runs, out.is_empty() || out.ends_with('\n')))
            }
            Node::Element { name, attrs, .. } if name == "hardBreak" => {
                let _ = attrs;
                out.push_str("\\\n");
            }
            Node::Element { name, attrs, .. } if name == "image" => {
                let alt = attr_str(attrs, "alt").unwrap_or_default();
                let src = attr_str(attrs, "src")
                    .and_then(|s| safe_url(&s))
                    .unwrap_or_default();
                let title = attr_str(attrs, "title")
                    .map(|t| md_title(&t))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "![{}]({}{title})",
                    escape_markdown(&one_line(&alt), false),
                    md_url(&src)
                ));
            }
            Node::Element { children, .. } => out.push_str(&md_inline(children)),
        }
    }
    out
}

fn md_inline_runs(runs: &[Run], at_line_start: bool) -> String {
    let mut out = String::new();
    let mut open: Vec<(&'static str, Option<&Any>)> = vec![];
    let mut line_start = at_line_start;
    for run in runs {
        let marks = marks_of(run);
        let keep = open
            .iter()
            .zip(&marks)
            .take_while(|(a, b)| a.0 == b.0 && a.1 == b.1)
            .count();
        // Whitespace at the edge of emphasis would keep it from closing: move it out.
        let trailing: String = {
            let trimmed = out.trim_end_matches(' ').len();
            if open.len() > keep && trimmed < out.len() {
                out.split_off(trimmed)
            } else {
                String::new()
            }
        };
        while open.len() > keep {
            let (mark, attrs) = open.pop().expect("longer than keep");
            out.push_str(&md_close(mark, attrs));
        }
        out.push_str(&trailing);
        let mut text = run.text.as_str();
        if marks.len() > keep {
            let start = text.len() - text.trim_start_matches(' ').len();
            out.push_str(&text[..start]);
            text = &text[start..];
        }
        for (mark, attrs) in &marks[keep..] {
            out.push_str(md_open(mark));
            open.push((mark, *attrs));
        }
        if open.iter().any(|(m, _)| *m == "code") {
            out.push_str(&code_span(text));
        } else {
            out.push_str(&escape_markdown(
                &one_line(text),
                line_start && out.is_empty(),
            ));
        }
        line_start = false;
    }
    let trimmed = out.trim_end_matches(' ').len();
    let trailing = if open.is_empty() {
        String::new()
    } else {
        out.split_off(trimmed)
    };
    while let Some((mark, attrs)) = open.pop() {
        out.push_str(&md_close(mark, attrs));
    }
    out.push_str(&trailing);
    out
}

fn md_open(mark: &str) -> &'static str {
    match mark {
        "link" => "[",
        "bold" => "**",
        "italic" => "*",
        "strike" => "~~",
        // Code is written as a span of its own; CommonMark has no underline.
        _ => "",
    }
}

fn md_close(mark: &str, attrs: Option<&Any>) -> String {
    match mark {
        "link" => {
            let href = link_href(attrs).unwrap_or_default();
            let title = link_title(attrs).map(|t| md_title(&t)).unwrap_or_default();
            format!("]({}{title})", md_url(&href))
        }
        "bold" => "**".into(),
        "italic" => "*".into(),
        "strike" => "~~".into(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------- Plain text

fn plain_text(nodes: &[Node]) -> String {
    let mut out = String::new();
    for node in nodes {
        match node {
            Node::Text(runs) => runs.iter().for_each(|r| out.push_str(&r.text)),
            Node::Element { name, .. } if name == "hardBreak" => out.push('\n'),
            Node::Element { children, .. } => out.push_str(&plain_text(children)),
        }
    }
    out
}

/// The nodes as plain text: one block per paragraph, list items with their markers.
pub fn to_plain(nodes: &[Node]) -> String {
    fn blocks(nodes: &[Node], out: &mut Vec<String>, prefix: &str) {
        for node in nodes {
            match node {
                Node::Element {
                    name,
                    children,
                    attrs,
                } => match name.as_str() {
                    "bulletList" | "orderedList" | "taskList" => {
                        for (i, item) in children.iter().enumerate() {
                            let marker = match (name.as_str(), item) {
                                ("orderedList", _) => format!(
                                    "{}. ",
                                    attr_i64(attrs, "start")
                                        .unwrap_or(1)
                                        .saturating_add(i as i64)
                                ),
                                (_, Node::Element { name, attrs, .. }) if name == "taskItem" => {
                                    if attr_true(attrs, "checked") {
                                        "[x] ".into()
                                    } else {
                                        "[ ] ".into()
                                    }
                                }
                                _ => "- ".into(),
                            };
                            let mut inner = vec![];
                            if let Node::Element { children, .. } = item {
                                blocks(children, &mut inner, "");
                            }
                            let indent = format!("{prefix}{}", " ".repeat(marker.len()));
                            for (j, block) in inner.iter().enumerate() {
                                let lead = if j == 0 {
                                    format!("{prefix}{marker}")
                                } else {
                                    indent.clone()
                                };
                                out.push(format!("{lead}{}", indent_rest(block, &indent)));
                            }
                        }
                    }
                    "paragraph" | "heading" | "codeBlock" => {
                        out.push(format!("{prefix}{}", plain_text(children)))
                    }
                    "horizontalRule" => out.push(format!("{prefix}---")),
                    "tableRow" => out.push(
                        children
                            .iter()
                            .map(|cell| match cell {
                                Node::Element { children, .. } => plain_text(children),
                                Node::Text(runs) => runs.iter().map(|r| r.text.as_str()).collect(),
                            })
                            .collect::<Vec<_>>()
                            .join("\t"),
                    ),
                    _ => blocks(children, out, prefix),
                },
                Node::Text(runs) => out.push(runs.iter().map(|r| r.text.as_str()).collect()),
            }
        }
    }
    let mut out = vec![];
    blocks(nodes, &mut out, "");
    let mut text = out.join("\n\n");
    text.push('\n');
    text
}

// ------------------------------------------------------------------------ ProseMirror JSON

/// An attribute as JSON; whole numbers as integers (Yjs keeps every number as a double).
fn any_json(any: &Any) -> Value {
    fn whole(value: Value) -> Value {
        match value {
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => Value::Number(n),
            },
            Value::Array(items) => Value::Array(items.into_iter().map(whole).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, whole(v))).collect())
            }
            other => other,
        }
    }
    whole(serde_json::to_value(any).unwrap_or(Value::Null))
}

/// The nodes as ProseMirror JSON (what TipTap's `editor.getJSON()` returns).
pub fn to_prosemirror_json(nodes: &[Node]) -> Value {
    fn node_json(node: &Node) -> Vec<Value> {
        match node {
            Node::Text(runs) => runs
                .iter()
                .map(|run| {
                    let mut text = json!({ "type": "text", "text": run.text });
                    if !run.marks.is_empty() {
                        text["marks"] = run
                            .marks
                            .iter()
                            .map(|(name, attrs)| match attrs {
                                Any::Map(map) if !map.is_empty() => {
                                    json!({ "type": name, "attrs": any_json(attrs) })
                                }
                                _ => json!({ "type": name }),
                            })
                            .collect();
                    }
                    text
                })
                .collect(),
            Node::Element {
                name,
                attrs,
                children,
            } => {
                let mut out = json!({ "type": name });
                if !attrs.is_empty() {
                    out["attrs"] = attrs
                        .iter()
                        .map(|(k, v)| (k.clone(), any_json(v)))
                        .collect();
                }
                let content: Vec<Value> = children.iter().flat_map(node_json).collect();
                if !content.is_empty() {
                    out["content"] = Value::Array(content);
                }
                vec![out]
            }
        }
    }
    json!({ "type": "doc", "content": nodes.iter().flat_map(node_json).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_urls_pass() {
        for ok in [
            "https://a.b/c?d=1",
            "http://x",
            "mailto:a@b.c",
            "/relative",
            "#top",
            "page?x=1:2",
        ] {
            assert_eq!(safe_url(ok).as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "javascript&colon;alert(1)",
            "javascript&#58;alert(1)",
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,x",
            "vbscript:x",
            "java\tscript:x",
            "",
        ] {
            assert_eq!(safe_url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn inline_markdown_stays_on_one_line() {
        let link = Any::from(std::collections::HashMap::from([
            ("href".to_owned(), Any::from("https://example.com")),
            (
                "title".to_owned(),
                Any::from("x\n\n<script>alert(1)</script>"),
            ),
        ]));
        let run = |text: &str, mark: &str, attrs: Any| Run {
            text: text.into(),
            marks: BTreeMap::from([(mark.to_owned(), attrs)]),
        };
        let nodes = vec![Node::Element {
            name: "paragraph".into(),
            attrs: BTreeMap::new(),
            children: vec![Node::Text(vec![
                run("linked", "link", link),
                run("a\n\n<img src=x onerror=alert(1)>", "code", Any::Null),
                Run {
                    text: "b\n\n<script>".into(),
                    marks: BTreeMap::new(),
                },
            ])],
        }];
        let markdown = to_markdown(&nodes);
        assert_eq!(markdown.trim_end().lines().count(), 1, "{markdown}");
        assert!(!markdown.contains("<script>"), "{markdown}");
    }

    #[test]
    fn markdown_escapes_what_would_be_markup() {
        assert_eq!(
            escape_markdown("a *b* [c] <d> `e`", false),
            "a \\*b\\* \\[c\\] \\<d\\> \\`e\\`"
        );
        assert_eq!(
            escape_markdown("# not a heading", true),
            "\\# not a heading"
        );
        assert_eq!(escape_markdown("1. not a list", true), "1\\. not a list");
        assert_eq!(code_span("a `b` c"), "``a `b` c``");
    }
}
