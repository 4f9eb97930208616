//! A document's past content, at the Yjs level: which Yjs item every visible character of
//! a text root belongs to (attribution maps items to the actors who delivered them),
//! what changed between two points of a text root, and the one update that brings the
//! content of an earlier point back as a forward edit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use similar::{DiffOp, TextDiff};

pub use crate::content::{root_kind, RootKind};
use yrs::types::text::{ChangeKind, YChange};
use yrs::types::xml::XmlIn;
use yrs::types::AsPrelim;
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, Doc, GetString, In, Map, Out, ReadTxn, Snapshot, Text, Transact, Update,
    XmlFragment,
};

/// How long a text diff may search for the smallest edit before settling for a larger one.
const DIFF_DEADLINE: Duration = Duration::from_secs(2);

/// Every root of the document in name order, with what `f` makes of its kind and value.
fn sorted_roots<T>(
    doc: &Doc,
    f: impl Fn(RootKind, &Out, &yrs::Transaction<'_>) -> T,
) -> Vec<(String, T)> {
    let txn = doc.transact();
    let mut roots: Vec<(String, T)> = txn
        .root_refs()
        .map(|(name, out)| (name.to_owned(), f(root_kind(&out, &txn), &out, &txn)))
        .collect();
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    roots
}

/// Every root of the document with its kind and content (as preliminary values that can
/// be inserted into another document), in name order.
fn roots(doc: &Doc) -> Vec<(String, (RootKind, In))> {
    sorted_roots(doc, |kind, out, txn| (kind, out.as_prelim(txn)))
}

/// The kinds of the document's roots, in name order (without copying their content, as
/// [`roots`] does: for a large document that copy was the size of the document).
pub fn root_kinds(doc: &Doc) -> Vec<(String, RootKind)> {
    sorted_roots(doc, |kind, _, _| kind)
}

/// A run of visible text made by one Yjs item: its client and the clock of its first
/// character (later characters follow on, one clock per UTF-16 unit); `None` for the line
/// break this reader puts between the text nodes of an XML fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemText {
    pub text: String,
    pub id: Option<(u64, u32)>,
}

/// The visible text items of one text type, in order (against an empty snapshot every
/// visible item comes back "added", as a chunk of its own, with its id).
fn items_of<T: Text>(text: &T, txn: &mut yrs::TransactionMut<'_>) -> Vec<ItemText> {
    let now = txn.snapshot();
    text.diff_range(
        txn,
        Some(&now),
        Some(&Snapshot::default()),
        YChange::identity,
    )
    .into_iter()
    .filter_map(|chunk| match (chunk.insert, chunk.ychange) {
        (Out::Any(Any::String(s)), Some(change)) if change.kind == ChangeKind::Added => {
            Some(ItemText {
                text: s.to_string(),
                id: Some((change.id.client.get(), change.id.clock)),
            })
        }
        _ => None,
    })
    .collect()
}

/// The visible text of root `root`, item by item, in document order: a text root's text,
/// or an XML fragment's text nodes (a TipTap document's paragraphs, headings, list items,
/// cells...) one per line. Embedded (non-text) content is left out.
pub fn text_items(doc: &Doc, root: &str) -> Vec<ItemText> {
    let kind = {
        let txn = doc.transact();
        txn.root_refs()
            .find(|(name, _)| *name == root)
            .map(|(_, out)| root_kind(&out, &txn))
    };
    if kind != Some(RootKind::Xml) {
        let text = doc.get_or_insert_text(root);
        let mut txn = doc.transact_mut();
        return items_of(&text, &mut txn);
    }
    let fragment = doc.get_or_insert_xml_fragment(root);
    let texts: Vec<yrs::XmlTextRef> = {
        let txn = doc.transact();
        fragment
            .successors(&txn)
            .filter_map(|node| match node {
                yrs::XmlOut::Text(text) => Some(text),
                _ => None,
            })
            .collect()
    };
    let mut txn = doc.transact_mut();
    let mut items = vec![];
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            items.push(ItemText {
                text: "\n".into(),
                id: None,
            });
        }
        items.extend(items_of(text, &mut txn));
    }
    items
}

/// The text blame and diff read: the items' text, concatenated.
pub fn plain_text(items: &[ItemText]) -> String {
    items.iter().map(|i| i.text.as_str()).collect()
}

/// The text a reader of the document sees, for search: every text root and every XML
/// fragment's text nodes (one per line), root by root in name order; maps, arrays and
/// embedded content are left out. At most `max_bytes` of it (cut at a character boundary):
/// the text is gathered no further, so a huge document costs no more than that here.
pub fn searchable_text(doc: &Doc, max_bytes: usize) -> String {
    let mut out = String::new();
    for (name, kind) in root_kinds(doc) {
        if out.len() >= max_bytes {
            break;
        }
        if matches!(kind, RootKind::Text | RootKind::Xml) {
            if !out.is_empty() {
                out.push('\n');
            }
            for item in text_items(doc, &name) {
                // One item can hold a whole paste (yrs merges a client's neighbouring
                // insertions): only what fits is copied.
                let end = item
                    .text
                    .floor_char_boundary(max_bytes.saturating_sub(out.len()));
                out.push_str(&item.text[..end]);
                if end < item.text.len() {
                    return out;
                }
            }
        }
    }
    out
}

/// Text attributed to whoever made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attributed {
    pub text: String,
    /// The actor whose edit delivered these characters (None: unknown to the index).
    pub actor: Option<String>,
}

/// The text of `items` split where the author changes, merging neighbours by one author.
/// `actor_at(client, clock)` names who made a character; `range_end` says where that
/// answer stops holding (so long items are looked up once per author range).
pub fn attribute(
    items: &[ItemText],
    actor_at: impl Fn(u64, u32) -> Option<String>,
    range_end: impl Fn(u64, u32) -> Option<u32>,
) -> Vec<Attributed> {
    let mut out: Vec<Attributed> = vec![];
    let mut push = |text: &str, actor: Option<String>| match out.last_mut() {
        Some(last) if last.actor == actor => last.text.push_str(text),
        _ => out.push(Attributed {
            text: text.to_owned(),
            actor,
        }),
    };
    for item in items {
        let Some((client, mut clock)) = item.id else {
            push(&item.text, None);
            continue;
        };
        let mut rest = item.text.as_str();
        while !rest.is_empty() {
            let actor = actor_at(client, clock);
            let end = range_end(client, clock).filter(|end| *end > clock);
            // Characters up to the end of this author's range (all, without one).
            let mut take = rest.len();
            if let Some(end) = end {
                let mut units = clock;
                for (offset, ch) in rest.char_indices() {
                    if units >= end {
                        take = offset;
                        break;
                    }
                    units += ch.len_utf16() as u32;
                }
            }
            let (now, later) =
                rest.split_at(take.max(rest.chars().next().map_or(0, char::len_utf8)));
            clock += now.encode_utf16().count() as u32;
            push(now, actor);
            rest = later;
        }
    }
    out
}

/// One change between two texts (word-grouped), with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TextChange {
    /// `equal`, `delete` or `insert`.
    pub op: &'static str,
    pub text: String,
    /// 1-based line where it starts, in the old text (equal, delete) or the new (insert).
    pub line: usize,
    /// For insertions: who wrote which part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authors: Option<Vec<Attributed>>,
}

/// The changes from `old` to `new`, grouped into words (whitespace runs are tokens too),
/// each insertion attributed from `new_authors` (the new text's attribution, in order).
pub fn text_changes(old: &str, new: &str, new_authors: &[Attributed]) -> Vec<TextChange> {
    let diff = TextDiff::configure()
        .deadline(Instant::now() + DIFF_DEADLINE)
        .diff_words(old, new);
    // Character offsets of each token, and of each attributed run of the new text.
    let offsets = |tokens: &mut dyn Iterator<Item = &str>| {
        let mut at = vec![0usize];
        for t in tokens {
            at.push(at.last().unwrap() + t.chars().count());
        }
        at
    };
    let old_at = offsets(&mut diff.iter_old_slices());
    let new_at = offsets(&mut diff.iter_new_slices());
    let mut runs = vec![]; // (start char, end char, actor)
    let mut start = 0;
    for run in new_authors {
        let end = start + run.text.chars().count();
        runs.push((start, end, run.actor.clone()));
        start = end;
    }
    let chars: Vec<char> = new.chars().collect();
    let old_chars: Vec<char> = old.chars().collect();
    // Lines before each character, counted once (changes are many on a long text).
    let lines = |text: &[char]| {
        let mut before = Vec::with_capacity(text.len() + 1);
        let mut count = 1;
        before.push(count);
        for c in text {
            if *c == '\n' {
                count += 1;
            }
            before.push(count);
        }
        before
    };
    let (old_lines, new_lines) = (lines(&old_chars), lines(&chars));
    let change =
        |op, (from, lines): (&[char], &[usize]), range: std::ops::Range<usize>, authors| {
            TextChange {
                op,
                text: from[range.clone()].iter().collect(),
                line: lines[range.start],
                authors,
            }
        };
    let (old_side, new_side) = (
        (&old_chars[..], &old_lines[..]),
        (&chars[..], &new_lines[..]),
    );
    let mut changes = vec![];
    for op in diff.ops() {
        let (old, new) = (op.old_range(), op.new_range());
        let (old, new) = (
            old_at[old.start]..old_at[old.end],
            new_at[new.start]..new_at[new.end],
        );
        if matches!(op, DiffOp::Equal { .. }) {
            changes.push(change("equal", old_side, old, None));
            continue;
        }
        if !old.is_empty() {
            changes.push(change("delete", old_side, old, None));
        }
        if !new.is_empty() {
            let authors = authors_of(&chars, &runs, new.clone());
            changes.push(change("insert", new_side, new, Some(authors)));
        }
    }
    changes
}

/// The attribution of characters `range` of the new text.
fn authors_of(
    chars: &[char],
    runs: &[(usize, usize, Option<String>)],
    range: std::ops::Range<usize>,
) -> Vec<Attributed> {
    let mut out: Vec<Attributed> = vec![];
    for (start, end, actor) in runs {
        let (from, to) = ((*start).max(range.start), (*end).min(range.end));
        if from < to {
            out.push(Attributed {
                text: chars[from..to].iter().collect(),
                actor: actor.clone(),
            });
        }
    }
    out
}

/// `git diff`-style unified diff of two texts by lines.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    TextDiff::configure()
        .deadline(Instant::now() + DIFF_DEADLINE)
        .diff_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

/// The update that turns the document whose state is `current` into the content of
/// `target`, made by a fresh Yjs client: text roots by a minimal delete/insert diff (the
/// untouched text keeps its items and formatting), XML fragments, maps and arrays by
/// replacing their children, roots missing from `target` emptied. Returns the client id
/// and the update (v1); an empty update when nothing differs.
pub fn restore_update(current: &[u8], target: &Doc) -> Result<(u64, Vec<u8>), String> {
    let work = Doc::new();
    let state = Update::decode_v1(current).map_err(|e| e.to_string())?;
    work.transact_mut()
        .apply_update(state)
        .map_err(|e| e.to_string())?;
    let wanted = roots(target);
    let present = root_kinds(&work);
    let mut plans = vec![];
    for (name, (kind, prelim)) in &wanted {
        let old_text = match kind {
            RootKind::Text => target
                .get_or_insert_text(name.as_str())
                .get_string(&target.transact()),
            _ => String::new(),
        };
        plans.push((name.clone(), *kind, Some(prelim.clone()), old_text));
    }
    for (name, kind) in &present {
        if !wanted.iter().any(|(n, _)| n == name) {
            plans.push((name.clone(), *kind, None, String::new()));
        }
    }
    // Shared types are taken before the transaction (taking one opens its own).
    let targets: Vec<(Root, Option<In>, String)> = plans
        .into_iter()
        .map(|(name, kind, prelim, old_text)| {
            let root = match kind {
                RootKind::Text => Root::Text(work.get_or_insert_text(name.as_str())),
                RootKind::Xml => Root::Xml(work.get_or_insert_xml_fragment(name.as_str())),
                RootKind::Map => Root::Map(work.get_or_insert_map(name.as_str())),
                RootKind::Array => Root::Array(work.get_or_insert_array(name.as_str())),
            };
            (root, prelim, old_text)
        })
        .collect();
    let mut txn = work.transact_mut();
    for (root, prelim, old_text) in targets {
        match root {
            Root::Text(text) => {
                let now = text.get_string(&txn);
                restore_text(&text, &mut txn, &now, &old_text);
            }
            Root::Xml(fragment) => {
                let len = fragment.len(&txn);
                if len > 0 {
                    fragment.remove_range(&mut txn, 0, len);
                }
                for child in xml_children(prelim) {
                    fragment.push_back(&mut txn, child);
                }
            }
            Root::Map(map) => {
                let keys: Vec<Arc<str>> = map.keys(&txn).map(Arc::from).collect();
                for key in keys {
                    map.remove(&mut txn, &key);
                }
                if let Some(In::Map(entries)) = prelim {
                    for (key, value) in entries.iter() {
                        map.insert(&mut txn, key.clone(), value.clone());
                    }
                }
            }
            Root::Array(array) => {
                let len = array.len(&txn);
                if len > 0 {
                    array.remove_range(&mut txn, 0, len);
                }
                if let Some(In::Array(items)) = prelim {
                    for (index, item) in items.iter().enumerate() {
                        array.insert(&mut txn, index as u32, item.clone());
                    }
                }
            }
        }
    }
    let client = txn.doc().client_id().get();
    Ok((client, txn.encode_update_v1()))
}

/// A root of the working document, by kind.
enum Root {
    Text(yrs::TextRef),
    Xml(yrs::XmlFragmentRef),
    Map(yrs::MapRef),
    Array(yrs::ArrayRef),
}

/// The children of an XML root as XML values (an undeclared fragment reads as an array).
fn xml_children(prelim: Option<In>) -> Vec<XmlIn> {
    let items = match prelim {
        Some(In::Array(items)) => items.to_vec(),
        Some(In::XmlElement(element)) => element.children.into_iter().map(xml_to_in).collect(),
        Some(In::XmlFragment(fragment)) => vec![In::XmlFragment(fragment)],
        _ => vec![],
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            In::XmlElement(element) => Some(XmlIn::Element(element)),
            In::XmlText(text) => Some(XmlIn::Text(text)),
            In::XmlFragment(fragment) => Some(XmlIn::Fragment(fragment)),
            _ => None,
        })
        .collect()
}

fn xml_to_in(node: XmlIn) -> In {
    match node {
        XmlIn::Element(element) => In::XmlElement(element),
        XmlIn::Text(text) => In::XmlText(text),
        XmlIn::Fragment(fragment) => In::XmlFragment(fragment),
    }
}

/// Turns `text` (reading `now`) into `wanted` with the fewest character deletes and
/// inserts, from the end backwards so earlier offsets stay valid. yrs indexes text by
/// UTF-8 byte here (the default offset kind).
fn restore_text(text: &yrs::TextRef, txn: &mut yrs::TransactionMut<'_>, now: &str, wanted: &str) {
    if now == wanted {
        return;
    }
    // Embedded objects take a position in the text but not in its string: positions from
    // the string would be wrong, so such a text is replaced whole.
    if text.len(txn) as usize != now.len() {
        let len = text.len(txn);
        text.remove_range(txn, 0, len);
        text.insert(txn, 0, wanted);
        return;
    }
    let diff = TextDiff::configure()
        .deadline(Instant::now() + DIFF_DEADLINE)
        .diff_chars(now, wanted);
    // Byte offsets of every character, computed once.
    let offsets = |s: &str| -> Vec<usize> {
        s.char_indices()
            .map(|(b, _)| b)
            .chain(std::iter::once(s.len()))
            .collect()
    };
    let (at_now, at_wanted) = (offsets(now), offsets(wanted));
    for op in diff.ops().iter().rev() {
        if matches!(op, DiffOp::Equal { .. }) {
            continue;
        }
        let (old, new) = (op.old_range(), op.new_range());
        let at = at_now[old.start];
        if !old.is_empty() {
            text.remove_range(txn, at as u32, (at_now[old.end] - at) as u32);
        }
        if !new.is_empty() {
            text.insert(
                txn,
                at as u32,
                &wanted[at_wanted[new.start]..at_wanted[new.end]],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::StateVector;

    fn doc_with(client: u64, text: &str) -> Doc {
        let doc = Doc::with_client_id(client);
        doc.get_or_insert_text("t")
            .push(&mut doc.transact_mut(), text);
        doc
    }

    #[test]
    fn searchable_text_stops_at_its_limit_on_a_character_boundary() {
        let doc = doc_with(1, "aé and more");
        assert_eq!(searchable_text(&doc, 1 << 20), "aé and more");
        assert_eq!(searchable_text(&doc, 3), "aé");
        // A cut inside "é" (two bytes) keeps what comes before it.
        assert_eq!(searchable_text(&doc, 2), "a");
        // A second root follows on a line of its own, and counts toward the limit.
        doc.get_or_insert_text("u")
            .push(&mut doc.transact_mut(), "second");
        assert_eq!(searchable_text(&doc, 100), "aé and more\nsecond");
        assert_eq!(searchable_text(&doc, 5), "aé a");
    }

    fn state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn text_of(doc: &Doc) -> String {
        doc.get_or_insert_text("t").get_string(&doc.transact())
    }

    fn apply(doc: &Doc, update: &[u8]) {
        doc.transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }

    #[test]
    fn restoring_text_is_a_minimal_forward_edit() {
        let old = doc_with(1, "the quick brown fox");
        let now = Doc::with_client_id(2);
        apply(&now, &state(&old));
        let t = now.get_or_insert_text("t");
        t.insert(&mut now.transact_mut(), 4, "very ");
        t.remove_range(&mut now.transact_mut(), 0, 4);
        t.push(&mut now.transact_mut(), " — ünïcødé 🦊");
        let target = Doc::new();
        apply(&target, &state(&old));
        let (client, update) = restore_update(&state(&now), &target).unwrap();
        assert!(client != 1 && client != 2);
        apply(&now, &update);
        assert_eq!(text_of(&now), "the quick brown fox");
        // The untouched characters kept their items: "quick brown fox" still by client 1.
        let items = text_items(&now, "t");
        assert!(items
            .iter()
            .any(|i| i.id.map(|(c, _)| c) == Some(1) && i.text.contains("quick brown fox")));
    }

    #[test]
    fn maps_arrays_and_missing_roots_are_replaced() {
        let old = Doc::with_client_id(1);
        old.get_or_insert_map("m")
            .insert(&mut old.transact_mut(), "a", 1);
        old.get_or_insert_array("l")
            .push_back(&mut old.transact_mut(), "x");
        let now = Doc::with_client_id(2);
        apply(&now, &state(&old));
        now.get_or_insert_map("m")
            .insert(&mut now.transact_mut(), "b", 2);
        now.get_or_insert_array("l")
            .push_back(&mut now.transact_mut(), "y");
        now.get_or_insert_text("new")
            .push(&mut now.transact_mut(), "later");
        let target = Doc::new();
        apply(&target, &state(&old));
        let (_, update) = restore_update(&state(&now), &target).unwrap();
        let check = Doc::new();
        apply(&check, &state(&now));
        apply(&check, &update);
        let json = crate::content::to_json(&check);
        assert_eq!(json["m"], serde_json::json!({"a": 1}));
        assert_eq!(json["l"], serde_json::json!(["x"]));
        assert_eq!(json["new"], serde_json::json!(""));
    }

    #[test]
    fn xml_fragments_get_their_children_back() {
        use yrs::types::xml::Xml;
        use yrs::{XmlElementPrelim, XmlTextPrelim};
        let old = Doc::with_client_id(1);
        let fragment = old.get_or_insert_xml_fragment("default");
        {
            let mut txn = old.transact_mut();
            let p = fragment.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(&mut txn, XmlTextPrelim::new("hello"));
            let h = fragment.push_back(&mut txn, XmlElementPrelim::empty("heading"));
            h.insert_attribute(&mut txn, "level", "2");
            h.push_back(&mut txn, XmlTextPrelim::new("Title"));
        }
        let now = Doc::with_client_id(2);
        apply(&now, &state(&old));
        {
            let fragment = now.get_or_insert_xml_fragment("default");
            let mut txn = now.transact_mut();
            fragment.remove_range(&mut txn, 0, 1);
            fragment.push_back(&mut txn, XmlElementPrelim::empty("blockquote"));
        }
        // Server-side documents never declare their roots.
        let target = Doc::new();
        apply(&target, &state(&old));
        let (_, update) = restore_update(&state(&now), &target).unwrap();
        let check = Doc::new();
        apply(&check, &state(&now));
        apply(&check, &update);
        let expected = "<paragraph>hello</paragraph><heading level=\"2\">Title</heading>";
        assert_eq!(crate::content::to_json(&check)["default"], expected);
        let reader = check.get_or_insert_xml_fragment("default");
        assert_eq!(reader.get_string(&check.transact()), expected);
    }

    #[test]
    fn attribution_splits_items_by_author_range() {
        let a = doc_with(7, "hello ");
        let b = Doc::with_client_id(9);
        apply(&b, &state(&a));
        b.get_or_insert_text("t")
            .push(&mut b.transact_mut(), "world");
        let items = text_items(&b, "t");
        let spans = attribute(
            &items,
            |client, clock| match (client, clock) {
                (7, c) if c < 3 => Some("alice".into()),
                (7, _) => Some("carol".into()),
                (9, _) => Some("bob".into()),
                _ => None,
            },
            |client, clock| match (client, clock) {
                (7, c) if c < 3 => Some(3),
                (7, _) => Some(6),
                _ => Some(u32::MAX),
            },
        );
        let pairs: Vec<(&str, Option<&str>)> = spans
            .iter()
            .map(|s| (s.text.as_str(), s.actor.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("hel", Some("alice")),
                ("lo ", Some("carol")),
                ("world", Some("bob"))
            ]
        );
        let changes = text_changes("hello there", "hello world", &spans);
        let inserted: Vec<_> = changes.iter().filter(|c| c.op == "insert").collect();
        assert_eq!(inserted.len(), 1);
        assert_eq!(inserted[0].text, "world");
        assert_eq!(
            inserted[0].authors.as_ref().unwrap()[0].actor.as_deref(),
            Some("bob")
        );
        assert!(changes
            .iter()
            .any(|c| c.op == "delete" && c.text == "there"));
    }
}

/// Timing of the pieces of materialising a point (run by hand:
/// `cargo test --release -p collab-live --lib materialising_costs -- --ignored --nocapture`).
#[cfg(test)]
mod costs {
    use std::time::Instant;

    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

    #[test]
    #[ignore = "a measurement, not a check"]
    fn materialising_costs() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/traces/automerge-paper.json.gz"
        );
        let file = std::fs::File::open(path).expect("the trace is there");
        let trace: serde_json::Value =
            serde_json::from_reader(flate2_reader(file)).expect("the trace is JSON");
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("text");
        let mut updates = vec![];
        for txn in trace["txns"].as_array().unwrap() {
            let mut t = doc.transact_mut();
            for patch in txn["patches"].as_array().unwrap() {
                let (at, del, ins) = (
                    patch[0].as_u64().unwrap() as u32,
                    patch[1].as_u64().unwrap() as u32,
                    patch[2].as_str().unwrap(),
                );
                if del > 0 {
                    text.remove_range(&mut t, at, del);
                }
                if !ins.is_empty() {
                    text.insert(&mut t, at, ins);
                }
            }
            updates.push(t.encode_update_v1());
        }
        let v1 = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let v2 = doc
            .transact()
            .encode_state_as_update_v2(&StateVector::default());
        println!("state v1 {} bytes, v2 {} bytes", v1.len(), v2.len());
        for _ in 0..3 {
            let started = Instant::now();
            let update = Update::decode_v1(&v1).unwrap();
            let decoded = started.elapsed();
            let fresh = Doc::new();
            fresh.transact_mut().apply_update(update).unwrap();
            let applied = started.elapsed();
            let s = fresh
                .get_or_insert_text("text")
                .get_string(&fresh.transact());
            println!(
                "v1: decode {decoded:?}, + apply {applied:?}, + text {:?} ({} chars)",
                started.elapsed(),
                s.len()
            );
            let started = Instant::now();
            let fresh = Doc::new();
            fresh
                .transact_mut()
                .apply_update(Update::decode_v2(&v2).unwrap())
                .unwrap();
            println!("v2: decode + apply {:?}", started.elapsed());
        }
        let started = Instant::now();
        let fresh = Doc::new();
        {
            let mut t = fresh.transact_mut();
            for u in &updates[..500] {
                t.apply_update(Update::decode_v1(u).unwrap()).unwrap();
            }
        }
        println!("500 updates in one transaction: {:?}", started.elapsed());
        let started = Instant::now();
        let fresh = Doc::new();
        for u in &updates[..20000] {
            let mut t = fresh.transact_mut();
            t.apply_update(Update::decode_v1(u).unwrap()).unwrap();
            let _ = t.insert_set().len() + t.delete_set().len();
        }
        println!(
            "20,000 updates, one transaction each: {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        for _ in 0..100 {
            let _ = doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
        }
        println!(
            "encoding the final state: {:?} each",
            started.elapsed() / 100
        );
    }

    fn flate2_reader(file: std::fs::File) -> impl std::io::Read {
        flate2::read::GzDecoder::new(file)
    }
}
