//! Comment anchors in a document's text: a passage marked by two sticky positions (yrs
//! `StickyIndex`, which Yjs calls `RelativePosition`) that follow the text as it is
//! edited. The start sticks to the passage's first character, the end to its last, so
//! text typed inside the passage widens it, text typed before or after it moves it, and
//! deleting part of it narrows it; when all of it is deleted both ends meet and the thread
//! is *orphaned*. Offsets in the API are Unicode characters (code points).
//!
//! A passage is in a `Y.Text` root, or in a `Y.XmlFragment` root — a TipTap / ProseMirror
//! document, where the positions are in its text nodes (what y-prosemirror's
//! `absolutePositionToRelativePosition` gives) or between its elements. Offsets in a
//! fragment count its text read the way history and search read it: the text nodes in
//! document order, one per line.

use std::collections::HashMap;

use collab_domain::comment::Anchor;
use yrs::branch::BranchPtr;
use yrs::types::text::YChange;
use yrs::types::xml::XmlOut;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Assoc, Doc, GetString, OffsetKind, Out, ReadTxn, StickyIndex, Text, Transact, XmlFragment,
    XmlFragmentRef,
};

use crate::content::{root_kind, RootKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("the document has no root named {0:?}")]
    NoSuchRoot(String),
    #[error("the root {0:?} holds no text (anchors are in Y.Text or Y.XmlFragment roots)")]
    NotText(String),
    #[error("from and to must be 0 <= from < to <= {len} (the text's length in characters)")]
    OutOfRange { len: usize },
    #[error("start and end must be Yjs relative positions (encodeRelativePosition), base64")]
    Undecodable,
    #[error("start and end must be positions in the text {0:?} of this document")]
    Elsewhere(String),
    #[error("the passage is empty: start must come before end")]
    Empty,
}

/// Where an anchor is in the current text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// Offsets in characters: `from` is the first character, `to` one past the last.
    pub from: usize,
    pub to: usize,
    /// The passage's current text.
    pub quote: String,
}

/// One text node of a root, where its characters start in the root's text.
struct Segment {
    branch: BranchPtr,
    text: String,
    start: usize,
    len: usize,
}

/// A root's text as anchors see it: its text nodes in document order (one for a
/// `Y.Text`), one line each, and (for a fragment) every node in document order with how
/// many text nodes come before it, to place positions between elements.
struct Layout {
    root: BranchPtr,
    segments: Vec<Segment>,
    nodes: Vec<(BranchPtr, usize)>,
    content: String,
    len: usize,
    kind: OffsetKind,
}

/// The plain text of a text node (formatting left out; embeds have no text).
fn plain<T: ReadTxn, X: Text>(text: &X, txn: &T) -> String {
    text.diff(txn, YChange::identity)
        .into_iter()
        .filter_map(|chunk| match chunk.insert {
            Out::Any(Any::String(s)) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}

impl Layout {
    fn of<T: ReadTxn>(txn: &T, root: &str, kind: OffsetKind) -> Result<Self, AnchorError> {
        let (_, out) = txn
            .root_refs()
            .find(|(name, _)| *name == root)
            .ok_or_else(|| AnchorError::NoSuchRoot(root.to_owned()))?;
        let no_root = || AnchorError::NoSuchRoot(root.to_owned());
        // The root's branch, whatever its type (a text reference to it reads it as text).
        let text = txn.get_text(root).ok_or_else(no_root)?;
        let branch: &yrs::branch::Branch = text.as_ref();
        let mut layout = Layout {
            root: BranchPtr::from(branch),
            segments: vec![],
            nodes: vec![],
            content: String::new(),
            len: 0,
            kind,
        };
        match root_kind(&out, txn) {
            RootKind::Text => layout.push(layout.root, text.get_string(txn)),
            RootKind::Xml => {
                let fragment: XmlFragmentRef = txn.get_xml_fragment(root).ok_or_else(no_root)?;
                for node in fragment.successors(txn) {
                    let before = layout.segments.len();
                    let branch = branch_of(&node);
                    layout.nodes.push((branch, before));
                    if let XmlOut::Text(text) = &node {
                        layout.push(branch, plain(text, txn));
                    }
                }
            }
            _ => return Err(AnchorError::NotText(root.to_owned())),
        }
        Ok(layout)
    }

    fn push(&mut self, branch: BranchPtr, text: String) {
        if !self.segments.is_empty() {
            self.content.push('\n');
            self.len += 1;
        }
        let len = text.chars().count();
        self.content.push_str(&text);
        self.segments.push(Segment {
            branch,
            text,
            start: self.len,
            len,
        });
        self.len += len;
    }

    /// Where the text node `k` (0-based, in document order) starts; the end of the text
    /// when there are no more.
    fn start_of_segment(&self, k: usize) -> usize {
        self.segments.get(k).map_or(self.len, |s| s.start)
    }

    /// The offset in characters of a position in this root; `None` when it is not in it.
    fn offset_of<T: ReadTxn>(&self, txn: &T, offset: &yrs::Offset) -> Option<usize> {
        if let Some(segment) = self.segments.iter().find(|s| s.branch == offset.branch) {
            return Some(segment.start + to_chars(&segment.text, offset.index, self.kind));
        }
        // Between the children of an element (or of the fragment): where the first text
        // node at or after child `index` starts.
        let (position, subtree) = if offset.branch == self.root {
            (None, self.nodes.len())
        } else {
            let at = self.nodes.iter().position(|(b, _)| *b == offset.branch)?;
            let element = XmlFragmentRef::from(offset.branch);
            (Some(at), element.successors(txn).count())
        };
        let first = position.map_or(0, |at| at + 1);
        let child = XmlFragmentRef::from(offset.branch)
            .get(txn, offset.index)
            .map(|node| branch_of(&node));
        let segments_before = match child {
            Some(child) => self.nodes[first..].iter().find(|(b, _)| *b == child)?.1,
            None => self
                .nodes
                .get(first + subtree)
                .map_or(self.segments.len(), |(_, before)| *before),
        };
        Some(self.start_of_segment(segments_before))
    }

    /// The text node holding character `at` (for a start) or ending at `at` (for an end),
    /// with the offset in its own units.
    fn place(&self, at: usize, assoc: Assoc) -> Option<(BranchPtr, u32)> {
        let segment = match assoc {
            // The first character of the passage: in a node, or (on a line break) the
            // start of the next one.
            Assoc::After => self.segments.iter().find(|s| at < s.start + s.len)?,
            // One past its last character: at most the end of a node.
            Assoc::Before => self.segments.iter().rev().find(|s| s.start < at)?,
        };
        let local = at.clamp(segment.start, segment.start + segment.len) - segment.start;
        Some((segment.branch, to_units(&segment.text, local, self.kind)))
    }

    fn passage(&self, from: usize, to: usize) -> Passage {
        let quote = self.content.chars().skip(from).take(to - from).collect();
        Passage { from, to, quote }
    }
}

fn branch_of(node: &XmlOut) -> BranchPtr {
    let branch: &yrs::branch::Branch = match node {
        XmlOut::Element(e) => e.as_ref(),
        XmlOut::Fragment(f) => f.as_ref(),
        XmlOut::Text(t) => t.as_ref(),
    };
    BranchPtr::from(branch)
}

/// A character offset in `text` as the document's own offset unit.
fn to_units(text: &str, chars: usize, kind: OffsetKind) -> u32 {
    let prefix = text.chars().take(chars);
    let units: usize = match kind {
        OffsetKind::Bytes => prefix.map(char::len_utf8).sum(),
        OffsetKind::Utf16 => prefix.map(char::len_utf16).sum(),
    };
    units as u32
}

/// An offset in the document's unit as characters of `text`.
fn to_chars(text: &str, units: u32, kind: OffsetKind) -> usize {
    let mut seen = 0usize;
    let mut count = 0usize;
    for c in text.chars() {
        if seen >= units as usize {
            break;
        }
        seen += match kind {
            OffsetKind::Bytes => c.len_utf8(),
            OffsetKind::Utf16 => c.len_utf16(),
        };
        count += 1;
    }
    count
}

/// The anchor for characters `from..to` of root `root` now, and the passage's text (for
/// clients over HTTP, which have no Yjs positions of their own). In a fragment a passage
/// may span lines; one starting on a line break starts on the next line.
pub fn from_offsets(
    doc: &Doc,
    root: &str,
    from: usize,
    to: usize,
) -> Result<(Anchor, Passage), AnchorError> {
    let txn = doc.transact();
    let layout = Layout::of(&txn, root, doc.offset_kind())?;
    let len = layout.len;
    if from >= to || to > len {
        return Err(AnchorError::OutOfRange { len });
    }
    let sticky = |at, assoc| {
        let (branch, units) = layout
            .place(at, assoc)
            .ok_or(AnchorError::OutOfRange { len })?;
        StickyIndex::at(&txn, branch, units, assoc).ok_or(AnchorError::OutOfRange { len })
    };
    let start = sticky(from, Assoc::After)?;
    let end = sticky(to, Assoc::Before)?;
    let anchor = Anchor {
        root: root.to_owned(),
        start: start.encode_v1(),
        end: end.encode_v1(),
    };
    match resolve_in(&txn, &layout, &anchor) {
        Resolved::Passage(passage) => Ok((anchor, passage)),
        _ => Err(AnchorError::Empty),
    }
}

/// Checks an anchor a Yjs client made (`Y.encodeRelativePosition` of two positions in
/// root `root`): both must be positions in that root now, the start before the end.
pub fn check(doc: &Doc, anchor: &Anchor) -> Result<Passage, AnchorError> {
    if StickyIndex::decode_v1(&anchor.start).is_err()
        || StickyIndex::decode_v1(&anchor.end).is_err()
    {
        return Err(AnchorError::Undecodable);
    }
    let txn = doc.transact();
    let layout = Layout::of(&txn, &anchor.root, doc.offset_kind())?;
    match resolve_in(&txn, &layout, anchor) {
        Resolved::Passage(passage) => Ok(passage),
        Resolved::Orphaned => Err(AnchorError::Empty),
        Resolved::Elsewhere => Err(AnchorError::Elsewhere(anchor.root.clone())),
    }
}

/// What an anchor marks in the current text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Passage(Passage),
    /// All of its text was deleted.
    Orphaned,
    /// Its positions are not in its root (an anchor this server never accepted, or the
    /// root, or the text node the passage was in, is gone).
    Elsewhere,
}

/// Where `anchor` is in `doc` now.
pub fn resolve(doc: &Doc, anchor: &Anchor) -> Resolved {
    resolve_all(doc, std::slice::from_ref(anchor))
        .pop()
        .unwrap_or(Resolved::Elsewhere)
}

/// Where each of `anchors` is in `doc` now (a document's threads): each root is laid out
/// once, in one read of the document, however many threads are in it.
pub fn resolve_all(doc: &Doc, anchors: &[Anchor]) -> Vec<Resolved> {
    let txn = doc.transact();
    let mut layouts: HashMap<&str, Option<Layout>> = HashMap::new();
    anchors
        .iter()
        .map(|anchor| {
            let layout = layouts
                .entry(anchor.root.as_str())
                .or_insert_with(|| Layout::of(&txn, &anchor.root, doc.offset_kind()).ok());
            match layout {
                Some(layout) => resolve_in(&txn, layout, anchor),
                None => Resolved::Elsewhere,
            }
        })
        .collect()
}

fn resolve_in<T: ReadTxn>(txn: &T, layout: &Layout, anchor: &Anchor) -> Resolved {
    let (Ok(start), Ok(end)) = (
        StickyIndex::decode_v1(&anchor.start),
        StickyIndex::decode_v1(&anchor.end),
    ) else {
        return Resolved::Elsewhere;
    };
    let (Some(start), Some(end)) = (start.get_offset(txn), end.get_offset(txn)) else {
        return Resolved::Elsewhere;
    };
    let (Some(from), Some(to)) = (layout.offset_of(txn, &start), layout.offset_of(txn, &end))
    else {
        return Resolved::Elsewhere;
    };
    if from >= to {
        return Resolved::Orphaned;
    }
    Resolved::Passage(layout.passage(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{IndexedSequence, Text, TextRef, XmlFragment};

    fn doc_with(text: &str) -> (Doc, TextRef) {
        let doc = Doc::with_client_id(1);
        let root = doc.get_or_insert_text("content");
        root.insert(&mut doc.transact_mut(), 0, text);
        (doc, root)
    }

    fn passage_of(doc: &Doc, anchor: &Anchor) -> (usize, usize, String) {
        match resolve(doc, anchor) {
            Resolved::Passage(p) => (p.from, p.to, p.quote),
            other => panic!("{other:?}"),
        }
    }

    /// Character offset `chars` of the current text in the document's unit.
    fn at(doc: &Doc, root: &TextRef, chars: usize) -> u32 {
        let content = root.get_string(&doc.transact());
        to_units(&content, chars, doc.offset_kind())
    }

    #[test]
    fn the_passage_follows_the_text() {
        let (doc, root) = doc_with("hello wörld, and more");
        let (anchor, first) = from_offsets(&doc, "content", 6, 11).unwrap();
        assert_eq!(first.quote, "wörld");
        // Typed before it: it moves.
        root.insert(&mut doc.transact_mut(), 0, ">> ");
        assert_eq!(passage_of(&doc, &anchor), (9, 14, "wörld".into()));
        // Typed right after its end or right before its start: it stays as it was.
        let end = at(&doc, &root, 14);
        root.insert(&mut doc.transact_mut(), end, "!");
        let start = at(&doc, &root, 9);
        root.insert(&mut doc.transact_mut(), start, "¡");
        assert_eq!(passage_of(&doc, &anchor), (10, 15, "wörld".into()));
        // Typed inside: it widens.
        let inside = at(&doc, &root, 12);
        root.insert(&mut doc.transact_mut(), inside, "ö");
        assert_eq!(passage_of(&doc, &anchor), (10, 16, "wöörld".into()));
        // Partly deleted: it narrows.
        let (from, to) = (at(&doc, &root, 10), at(&doc, &root, 12));
        root.remove_range(&mut doc.transact_mut(), from, to - from);
        assert_eq!(passage_of(&doc, &anchor), (10, 14, "örld".into()));
        // Wholly deleted (with text around it): orphaned.
        let (from, to) = (at(&doc, &root, 9), at(&doc, &root, 16));
        root.remove_range(&mut doc.transact_mut(), from, to - from);
        assert_eq!(resolve(&doc, &anchor), Resolved::Orphaned);
    }

    /// A TipTap-like document: paragraphs of text in the fragment "default".
    fn tiptap(paragraphs: &[&str]) -> (Doc, Vec<yrs::XmlTextRef>) {
        use yrs::{XmlElementPrelim, XmlTextPrelim};
        let doc = Doc::with_client_id(1);
        let fragment = doc.get_or_insert_xml_fragment("default");
        let mut txn = doc.transact_mut();
        let texts = paragraphs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let paragraph =
                    fragment.insert(&mut txn, i as u32, XmlElementPrelim::empty("paragraph"));
                paragraph.insert(&mut txn, 0, XmlTextPrelim::new(*p))
            })
            .collect();
        drop(txn);
        (doc, texts)
    }

    #[test]
    fn passages_in_a_tiptap_document_follow_its_text_nodes() {
        let (doc, texts) = tiptap(&["first line", "sëcond line", "third"]);
        // Offsets count the text nodes one per line.
        let (anchor, passage) = from_offsets(&doc, "default", 11, 17).unwrap();
        assert_eq!(passage.quote, "sëcond");
        // A passage over a line break, as an editor's selection across paragraphs.
        let (across, passage) = from_offsets(&doc, "default", 6, 17).unwrap();
        assert_eq!(passage.quote, "line\nsëcond");
        // Typed in the paragraph before it: it moves.
        texts[0].insert(&mut doc.transact_mut(), 0, "A ");
        assert_eq!(passage_of(&doc, &anchor), (13, 19, "sëcond".into()));
        // Typed inside: it widens; across lines too.
        texts[1].insert(&mut doc.transact_mut(), 1, "ee");
        assert_eq!(passage_of(&doc, &anchor), (13, 21, "seeëcond".into()));
        assert_eq!(passage_of(&doc, &across).2, "line\nseeëcond");
        // A client's own positions (y-prosemirror makes them in the text nodes, the end
        // sticking to the character before it) are accepted.
        let client = Anchor {
            root: "default".into(),
            start: texts[2]
                .sticky_index(&doc.transact(), 0, Assoc::After)
                .unwrap()
                .encode_v1(),
            end: texts[2]
                .sticky_index(&doc.transact(), 5, Assoc::Before)
                .unwrap()
                .encode_v1(),
        };
        assert_eq!(check(&doc, &client).unwrap().quote, "third");
        // Positions between elements (where y-prosemirror puts an empty paragraph's):
        // before the third paragraph is where its text starts.
        let fragment = doc.get_or_insert_xml_fragment("default");
        let between = Anchor {
            root: "default".into(),
            start: fragment
                .sticky_index(&doc.transact(), 2, Assoc::After)
                .unwrap()
                .encode_v1(),
            end: client.end.clone(),
        };
        assert_eq!(check(&doc, &between).unwrap().quote, "third");
        // The paragraph deleted: the thread is orphaned.
        fragment.remove_range(&mut doc.transact_mut(), 1, 1);
        assert!(matches!(
            resolve(&doc, &anchor),
            Resolved::Orphaned | Resolved::Elsewhere
        ));
        assert_eq!(passage_of(&doc, &client), (13, 18, "third".into()));
        // A start after the end is not a passage.
        let backwards = Anchor {
            root: "default".into(),
            start: client.end.clone(),
            end: client.start.clone(),
        };
        assert_eq!(check(&doc, &backwards).unwrap_err(), AnchorError::Empty);
    }

    #[test]
    fn resolving_many_at_once_lays_each_root_out_once_and_agrees_with_one_at_a_time() {
        let (doc, texts) = tiptap(&["one two", "three"]);
        doc.get_or_insert_text("notes")
            .insert(&mut doc.transact_mut(), 0, "a note");
        let anchors = vec![
            from_offsets(&doc, "default", 0, 3).unwrap().0,
            from_offsets(&doc, "notes", 2, 6).unwrap().0,
            from_offsets(&doc, "default", 8, 13).unwrap().0,
            Anchor {
                root: "missing".into(),
                start: vec![],
                end: vec![],
            },
        ];
        texts[0].insert(&mut doc.transact_mut(), 0, ">");
        let together = resolve_all(&doc, &anchors);
        let one_by_one: Vec<Resolved> = anchors.iter().map(|a| resolve(&doc, a)).collect();
        assert_eq!(together, one_by_one);
        let quotes: Vec<Option<String>> = together
            .into_iter()
            .map(|r| match r {
                Resolved::Passage(p) => Some(p.quote),
                _ => None,
            })
            .collect();
        assert_eq!(
            quotes,
            [
                Some("one".into()),
                Some("note".into()),
                Some("three".into()),
                None
            ]
        );
    }

    #[test]
    fn bad_anchors_are_refused() {
        let (doc, _) = doc_with("abc");
        assert_eq!(
            from_offsets(&doc, "content", 2, 2).unwrap_err(),
            AnchorError::OutOfRange { len: 3 }
        );
        assert_eq!(
            from_offsets(&doc, "content", 1, 4).unwrap_err(),
            AnchorError::OutOfRange { len: 3 }
        );
        assert!(matches!(
            from_offsets(&doc, "other", 0, 1),
            Err(AnchorError::NoSuchRoot(_))
        ));
        let garbage = Anchor {
            root: "content".into(),
            start: vec![0xff; 3],
            end: vec![],
        };
        assert_eq!(check(&doc, &garbage).unwrap_err(), AnchorError::Undecodable);
        // Positions of another document's items are not in this one.
        let (other, _) = doc_with("xyzxyz");
        let (mut foreign, _) = from_offsets(&other, "content", 0, 2).unwrap();
        let other_client = Doc::with_client_id(99);
        other_client
            .get_or_insert_text("content")
            .insert(&mut other_client.transact_mut(), 0, "q");
        let (theirs, _) = from_offsets(&other_client, "content", 0, 1).unwrap();
        foreign.start = theirs.start;
        assert!(check(&doc, &foreign).is_err());
    }
}
