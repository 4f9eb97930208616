//! Comment anchors in a document's text: a passage marked by two sticky positions (yrs
//! `StickyIndex`, which Yjs calls `RelativePosition`) that follow the text as it is
//! edited. The start sticks to the passage's first character, the end to its last, so
//! text typed inside the passage widens it, text typed before or after it moves it, and
//! deleting part of it narrows it; when all of it is deleted both ends meet and the thread
//! is *orphaned*. Offsets in the API are Unicode characters (code points).

use collab_domain::comment::Anchor;
use yrs::branch::BranchID;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Assoc, Doc, GetString, IndexedSequence, OffsetKind, ReadTxn, StickyIndex, Transact};

use crate::content::{root_kind, RootKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("the document has no root named {0:?}")]
    NoSuchRoot(String),
    #[error("the root {0:?} is not a text (anchors are in Y.Text roots)")]
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

/// The text of root `root`, checked to be a text.
fn text_root<T: ReadTxn>(txn: &T, root: &str) -> Result<yrs::TextRef, AnchorError> {
    let (_, out) = txn
        .root_refs()
        .find(|(name, _)| *name == root)
        .ok_or_else(|| AnchorError::NoSuchRoot(root.to_owned()))?;
    if root_kind(&out, txn) != RootKind::Text {
        return Err(AnchorError::NotText(root.to_owned()));
    }
    txn.get_text(root)
        .ok_or_else(|| AnchorError::NoSuchRoot(root.to_owned()))
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
/// clients over HTTP, which have no Yjs positions of their own).
pub fn from_offsets(
    doc: &Doc,
    root: &str,
    from: usize,
    to: usize,
) -> Result<(Anchor, Passage), AnchorError> {
    let txn = doc.transact();
    let text = text_root(&txn, root)?;
    let content = text.get_string(&txn);
    let len = content.chars().count();
    if from >= to || to > len {
        return Err(AnchorError::OutOfRange { len });
    }
    let kind = doc.offset_kind();
    let sticky = |chars, assoc| {
        text.sticky_index(&txn, to_units(&content, chars, kind), assoc)
            .ok_or(AnchorError::OutOfRange { len })
    };
    let start = sticky(from, Assoc::After)?;
    let end = sticky(to, Assoc::Before)?;
    let anchor = Anchor {
        root: root.to_owned(),
        start: start.encode_v1(),
        end: end.encode_v1(),
    };
    let quote = content.chars().skip(from).take(to - from).collect();
    Ok((anchor, Passage { from, to, quote }))
}

/// Checks an anchor a Yjs client made (`Y.encodeRelativePosition` of two positions in
/// root `root`): both must be positions in that text now, the start before the end.
pub fn check(doc: &Doc, anchor: &Anchor) -> Result<Passage, AnchorError> {
    if StickyIndex::decode_v1(&anchor.start).is_err()
        || StickyIndex::decode_v1(&anchor.end).is_err()
    {
        return Err(AnchorError::Undecodable);
    }
    {
        let txn = doc.transact();
        text_root(&txn, &anchor.root)?;
    }
    match resolve(doc, anchor) {
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
    /// root is gone).
    Elsewhere,
}

/// Where `anchor` is in `doc` now.
pub fn resolve(doc: &Doc, anchor: &Anchor) -> Resolved {
    let (Ok(start), Ok(end)) = (
        StickyIndex::decode_v1(&anchor.start),
        StickyIndex::decode_v1(&anchor.end),
    ) else {
        return Resolved::Elsewhere;
    };
    let txn = doc.transact();
    let Ok(text) = text_root(&txn, &anchor.root) else {
        return Resolved::Elsewhere;
    };
    let in_root = |offset: &yrs::Offset| matches!(offset.branch.id(), BranchID::Root(name) if *name == *anchor.root);
    let (Some(start), Some(end)) = (start.get_offset(&txn), end.get_offset(&txn)) else {
        return Resolved::Elsewhere;
    };
    if !in_root(&start) || !in_root(&end) {
        return Resolved::Elsewhere;
    }
    let content = text.get_string(&txn);
    let kind = doc.offset_kind();
    let from = to_chars(&content, start.index, kind);
    let to = to_chars(&content, end.index, kind);
    if from >= to {
        return Resolved::Orphaned;
    }
    let quote = content.chars().skip(from).take(to - from).collect();
    Resolved::Passage(Passage { from, to, quote })
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Text, TextRef};

    fn doc_with(text: &str) -> (Doc, TextRef) {
        let doc = Doc::with_client_id(1);
        let root = doc.get_or_insert_text("content");
        root.insert(&mut doc.transact_mut(), 0, text);
        (doc, root)
    }

    fn passage(doc: &Doc, anchor: &Anchor) -> (usize, usize, String) {
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
        assert_eq!(passage(&doc, &anchor), (9, 14, "wörld".into()));
        // Typed right after its end or right before its start: it stays as it was.
        let end = at(&doc, &root, 14);
        root.insert(&mut doc.transact_mut(), end, "!");
        let start = at(&doc, &root, 9);
        root.insert(&mut doc.transact_mut(), start, "¡");
        assert_eq!(passage(&doc, &anchor), (10, 15, "wörld".into()));
        // Typed inside: it widens.
        let inside = at(&doc, &root, 12);
        root.insert(&mut doc.transact_mut(), inside, "ö");
        assert_eq!(passage(&doc, &anchor), (10, 16, "wöörld".into()));
        // Partly deleted: it narrows.
        let (from, to) = (at(&doc, &root, 10), at(&doc, &root, 12));
        root.remove_range(&mut doc.transact_mut(), from, to - from);
        assert_eq!(passage(&doc, &anchor), (10, 14, "örld".into()));
        // Wholly deleted (with text around it): orphaned.
        let (from, to) = (at(&doc, &root, 9), at(&doc, &root, 16));
        root.remove_range(&mut doc.transact_mut(), from, to - from);
        assert_eq!(resolve(&doc, &anchor), Resolved::Orphaned);
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
