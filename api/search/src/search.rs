//! Running a query: what the caller may read as a filter, relevance (BM25, title matches
//! weighted up, recent documents nudged up), highlighted snippets.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use serde::Serialize;
use tantivy::columnar::ColumnValues;
use tantivy::index::SegmentId;
use tantivy::query::{
    BitSetDocSet, BooleanQuery, BoostQuery, EmptyQuery, EnableScoring, Occur, PhrasePrefixQuery,
    PhraseQuery, Query, Scorer, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    BitSet, DocAddress, DocId, DocSet, Score, SegmentReader, TantivyDocument, Term, TERMINATED,
};
use uuid::Uuid;

use crate::index::{analyzer, words, Fields, SearchIndex};
use crate::pairs::phrase_pairs;
use crate::query::{Item, Parsed};
use crate::SearchError;

/// How much more a match in the title counts than one in the text.
const TITLE_BOOST: Score = 3.0;
/// Recency: a document changed now scores up to this much more (halving every
/// `RECENCY_HALF_LIFE_DAYS`).
const RECENCY_WEIGHT: f64 = 0.5;
const RECENCY_HALF_LIFE_DAYS: f64 = 30.0;
/// How many characters of text a snippet shows.
const SNIPPET_CHARS: usize = 200;
/// Prefix expansions: how many terms the typed word may stand for in a phrase.
const PHRASE_PREFIX_EXPANSIONS: u32 = 50;

/// What a caller may read, as the read models say now.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Every document of these workspaces.
    pub workspaces: Vec<Uuid>,
    /// The documents the caller created in these workspaces (members without a default
    /// document role).
    pub own_in: Vec<Uuid>,
    /// These documents (shared with the caller).
    pub documents: Vec<Uuid>,
    /// Who the caller is (for `own_in`).
    pub user: String,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        self.workspaces.is_empty() && self.own_in.is_empty() && self.documents.is_empty()
    }
}

/// What kind of entries to look in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Document,
    Comment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Document => "document",
            Kind::Comment => "comment",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub query: Parsed,
    pub scope: Scope,
    pub workspace: Option<Uuid>,
    /// Documents in this folder or below.
    pub folder: Option<String>,
    pub kind: Option<Kind>,
    pub offset: usize,
    pub limit: usize,
    /// Now, microseconds since the epoch (recency is measured from it).
    pub now_micros: i64,
}

/// A piece of highlighted text: the pieces in order make the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub text: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub highlight: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub kind: &'static str,
    /// A comment's thread and the comment (comments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment_id: Option<String>,
    pub document_id: String,
    pub workspace_id: String,
    pub title: String,
    pub folder: String,
    /// When the document last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub score: f32,
    /// The title with the matched words highlighted.
    pub title_highlight: Vec<Piece>,
    /// The best passage of the text (up to 200 characters) with the matched words
    /// highlighted; empty when only the title matched.
    pub snippet: Vec<Piece>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub hits: Vec<Hit>,
    /// How many entries match, counted up to [`COUNTED_UP_TO`].
    pub total: usize,
    /// More than [`COUNTED_UP_TO`] entries match (`total` says that many).
    pub total_is_lower_bound: bool,
}

/// How far matches are counted: a page can reach no further, and counting every match of
/// a common word would cost as much as scoring them all.
pub const COUNTED_UP_TO: usize = 1000;

/// The most the recency factor multiplies a score by.
const MAX_RECENCY_BOOST: Score = 1.0 + RECENCY_WEIGHT as Score;

/// The bit sets of filters recently used, per segment: a caller's scope is read from the
/// index once per segment, not once per query. Segments never change (deletions are
/// checked apart, against the segment's alive set), so an entry is valid for as long as
/// its segment exists; the cache is emptied when it grows past its bound.
#[derive(Default)]
pub(crate) struct FilterCache {
    entries: std::sync::Mutex<std::collections::HashMap<(SegmentId, String), Arc<BitSet>>>,
}

impl FilterCache {
    /// Entries kept at most (each a bit per document of its segment: 12.5 KiB for 100,000).
    const MAX_ENTRIES: usize = 4096;

    fn bits(
        &self,
        segment: &SegmentReader,
        key: &str,
        filter: &dyn Weight,
    ) -> tantivy::Result<Arc<BitSet>> {
        let id = (segment.segment_id(), key.to_owned());
        if let Some(bits) = self.entries.lock().expect("not poisoned").get(&id) {
            return Ok(bits.clone());
        }
        let mut bits = BitSet::with_max_value(segment.max_doc());
        filter.for_each_no_score(segment, &mut |docs| {
            for doc in docs {
                bits.insert(*doc);
            }
        })?;
        let bits = Arc::new(bits);
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(id, bits.clone());
        Ok(bits)
    }
}

/// The best `keep` entries of a segment by final score (relevance × recency).
struct Ranked {
    keep: usize,
    /// A min-heap: the worst of the best at the top.
    heap: BinaryHeap<Reverse<(OrderedScore, DocId)>>,
    updated: Option<Arc<dyn ColumnValues<i64>>>,
    now: i64,
}

#[derive(Clone, Copy)]
struct OrderedScore(Score);

impl PartialEq for OrderedScore {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Ranked {
    fn new(keep: usize, segment: &SegmentReader, now: i64) -> Self {
        Self {
            keep,
            heap: BinaryHeap::with_capacity(keep + 1),
            updated: segment
                .fast_fields()
                .i64("updated")
                .map(|c| c.first_or_default_col(0))
                .ok(),
            now,
        }
    }

    /// Offers `doc` with relevance `score`; returns the relevance a document now needs to
    /// have a chance (recency can raise a score by at most [`MAX_RECENCY_BOOST`]).
    fn offer(&mut self, doc: DocId, score: Score) -> Score {
        let boost = self.updated.as_ref().map_or(1.0, |column| {
            let days = (self.now - column.get_val(doc)).max(0) as f64 / 86_400e6;
            1.0 + RECENCY_WEIGHT * 0.5f64.powf(days / RECENCY_HALF_LIFE_DAYS)
        });
        // Later documents lose ties (as the merged order has them).
        self.heap.push(Reverse((
            OrderedScore(score * boost as Score),
            u32::MAX - doc,
        )));
        if self.heap.len() > self.keep {
            self.heap.pop();
        }
        self.threshold()
    }

    fn threshold(&self) -> Score {
        match self.heap.peek() {
            Some(Reverse((worst, _))) if self.heap.len() >= self.keep => {
                worst.0 / MAX_RECENCY_BOOST
            }
            _ => Score::MIN,
        }
    }

    fn into_top(self, segment: u32) -> impl Iterator<Item = (Score, DocAddress)> {
        self.heap
            .into_iter()
            .map(move |Reverse((score, doc))| (score.0, DocAddress::new(segment, u32::MAX - doc)))
    }
}

/// Ranks a segment's matches within `allowed`. A filter that lets through a small part of
/// the segment drives the matching (only its documents are scored); otherwise every match
/// is checked against it while tantivy skips what cannot make the top.
fn rank(
    text: &dyn Weight,
    segment: &SegmentReader,
    allowed: &BitSet,
    ranked: &mut Ranked,
) -> tantivy::Result<()> {
    let alive = segment.alive_bitset();
    let ok = |doc: DocId| allowed.contains(doc) && alive.is_none_or(|a| a.is_alive(doc));
    if allowed.len() * 8 < segment.max_doc() as usize {
        let mut scorer = text.scorer(segment, 1.0)?;
        each_allowed(&mut *scorer, allowed, &mut |scorer| {
            let doc = scorer.doc();
            if ok(doc) {
                ranked.offer(doc, scorer.score());
            }
            true
        });
        return Ok(());
    }
    text.for_each_pruning(Score::MIN, segment, &mut |doc, score| {
        if ok(doc) {
            ranked.offer(doc, score)
        } else {
            ranked.threshold()
        }
    })
}

/// How many of a segment's matches `allowed` lets through, up to `cap`.
fn count(
    text: &dyn Weight,
    segment: &SegmentReader,
    allowed: &BitSet,
    cap: usize,
) -> tantivy::Result<usize> {
    let alive = segment.alive_bitset();
    let mut scorer = text.scorer(segment, 1.0)?;
    let mut n = 0;
    each_allowed(&mut *scorer, allowed, &mut |scorer| {
        if alive.is_none_or(|a| a.is_alive(scorer.doc())) {
            n += 1;
        }
        n < cap
    });
    Ok(n)
}

/// Calls `each` on `scorer` at every match that `allowed` holds (leapfrogging the two),
/// until it returns false.
fn each_allowed(
    scorer: &mut dyn Scorer,
    allowed: &BitSet,
    each: &mut dyn FnMut(&mut dyn Scorer) -> bool,
) {
    let mut allowed_docs = BitSetDocSet::from(allowed.clone());
    let mut doc = scorer.doc();
    while doc != TERMINATED {
        let next_allowed = allowed_docs.seek(doc);
        if next_allowed == doc {
            if !each(scorer) {
                return;
            }
            doc = scorer.advance();
        } else if next_allowed == TERMINATED {
            return;
        } else {
            doc = scorer.seek(next_allowed);
        }
    }
}

fn term(field: Field, word: &str) -> Term {
    Term::from_field_text(field, word)
}

/// An item in one field.
fn item_query(field: Field, item: &Item) -> Box<dyn Query> {
    let terms: Vec<Term> = item.words.iter().map(|w| term(field, w)).collect();
    match (terms.len(), item.prefix) {
        (1, false) => Box::new(TermQuery::new(
            terms[0].clone(),
            IndexRecordOption::WithFreqs,
        )),
        // The word as typed (scored) or any word it begins.
        (1, true) => Box::new(BooleanQuery::new(vec![
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    terms[0].clone(),
                    IndexRecordOption::WithFreqs,
                )) as Box<dyn Query>,
            ),
            (
                Occur::Should,
                Box::new(PhrasePrefixQuery::new(terms)) as Box<dyn Query>,
            ),
        ])),
        (_, false) => Box::new(PhraseQuery::new(terms)),
        (_, true) => {
            let mut query = PhrasePrefixQuery::new(terms);
            query.set_max_expansions(PHRASE_PREFIX_EXPANSIONS);
            Box::new(query)
        }
    }
}

/// An item in the text: a phrase whose every pair has a common word is looked up as pair
/// terms (see [`crate::pairs`]), anything else in the words' positions.
fn body_query(f: &Fields, item: &Item) -> Box<dyn Query> {
    if item.prefix {
        return item_query(f.body, item);
    }
    match phrase_pairs(&item.words) {
        Some(pairs) if pairs.len() == 1 => Box::new(TermQuery::new(
            term(f.pairs, &pairs[0]),
            IndexRecordOption::WithFreqs,
        )),
        Some(pairs) => Box::new(PhraseQuery::new(
            pairs.iter().map(|p| term(f.pairs, p)).collect(),
        )),
        None => item_query(f.body, item),
    }
}

/// An item anywhere: the title (weighted up) or the text.
fn item_anywhere(f: &Fields, item: &Item) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (
            Occur::Should,
            Box::new(BoostQuery::new(item_query(f.title, item), TITLE_BOOST)) as Box<dyn Query>,
        ),
        (Occur::Should, body_query(f, item)),
    ]))
}

fn any_term(field: Field, values: &[String]) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        values
            .iter()
            .map(|v| {
                (
                    Occur::Should,
                    Box::new(TermQuery::new(term(field, v), IndexRecordOption::Basic))
                        as Box<dyn Query>,
                )
            })
            .collect(),
    ))
}

fn scope_query(f: &Fields, scope: &Scope) -> Box<dyn Query> {
    let mut allowed: Vec<(Occur, Box<dyn Query>)> = vec![];
    let ids = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect::<Vec<_>>();
    if !scope.workspaces.is_empty() {
        allowed.push((
            Occur::Should,
            any_term(f.workspace, &ids(&scope.workspaces)),
        ));
    }
    if !scope.own_in.is_empty() {
        allowed.push((
            Occur::Should,
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, any_term(f.workspace, &ids(&scope.own_in))),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        term(f.creator, &scope.user),
                        IndexRecordOption::Basic,
                    )),
                ),
            ])),
        ));
    }
    if !scope.documents.is_empty() {
        allowed.push((Occur::Should, any_term(f.document, &ids(&scope.documents))));
    }
    if allowed.is_empty() {
        return Box::new(EmptyQuery);
    }
    Box::new(BooleanQuery::new(allowed))
}

/// What to match (scored). One word is the union of its title and text terms itself, not
/// nested in another clause, so that tantivy ranks it by Block-WAND (skipping the blocks
/// of documents that cannot make the top).
fn text_query(f: &Fields, query: &Parsed) -> Box<dyn Query> {
    if let ([group], []) = (query.groups.as_slice(), query.excluded.as_slice()) {
        if let [item] = group.as_slice() {
            return item_anywhere(f, item);
        }
    }
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![];
    for group in &query.groups {
        let alternatives: Vec<(Occur, Box<dyn Query>)> = group
            .iter()
            .map(|item| (Occur::Should, item_anywhere(f, item)))
            .collect();
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
    }
    for item in &query.excluded {
        clauses.push((Occur::MustNot, item_anywhere(f, item)));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// Which entries the request may see (not scored): what the caller may read and the
/// filters asked for.
fn filter_query(f: &Fields, request: &Request) -> Box<dyn Query> {
    let mut clauses = vec![(Occur::Must, scope_query(f, &request.scope))];
    if let Some(workspace) = request.workspace {
        clauses.push((Occur::Must, any_term(f.workspace, &[workspace.to_string()])));
    }
    if let Some(folder) = &request.folder {
        clauses.push((
            Occur::Must,
            any_term(f.folders, std::slice::from_ref(folder)),
        ));
    }
    if let Some(kind) = request.kind {
        clauses.push((Occur::Must, any_term(f.kind, &[kind.as_str().to_owned()])));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// The filter in full, as the key of its cached bit sets: equal keys are equal filters
/// (a hash could let two callers' scopes collide).
fn filter_key(request: &Request) -> String {
    let sorted = |ids: &[Uuid]| {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let scope = &request.scope;
    format!(
        "w={};o={};d={};u={};ws={:?};f={:?};k={:?}",
        sorted(&scope.workspaces),
        sorted(&scope.own_in),
        sorted(&scope.documents),
        if scope.own_in.is_empty() {
            ""
        } else {
            &scope.user
        },
        request.workspace,
        request.folder,
        request.kind.map(Kind::as_str),
    )
}

/// The words to highlight in `text`: the exact words of the query, and the words of
/// `text` that the typed prefix stands for.
fn highlighted_terms(parsed: &Parsed, text: &str) -> BTreeMap<String, Score> {
    let mut terms: BTreeMap<String, Score> = BTreeMap::new();
    let mut prefixes = vec![];
    for item in parsed.highlighted_words() {
        for (i, word) in item.words.iter().enumerate() {
            terms.insert(word.clone(), 1.0);
            if item.prefix && i + 1 == item.words.len() {
                prefixes.push(word.clone());
            }
        }
    }
    if !prefixes.is_empty() {
        for word in words(text) {
            if prefixes.iter().any(|p| word.starts_with(p.as_str())) {
                terms.insert(word, 1.0);
            }
        }
    }
    terms
}

/// `text` cut into pieces at the highlighted byte ranges.
fn pieces(text: &str, ranges: &[std::ops::Range<usize>]) -> Vec<Piece> {
    let mut out = vec![];
    let mut at = 0;
    for range in ranges {
        if range.start > at {
            out.push(Piece {
                text: text[at..range.start].to_owned(),
                highlight: false,
            });
        }
        out.push(Piece {
            text: text[range.clone()].to_owned(),
            highlight: true,
        });
        at = range.end;
    }
    if at < text.len() {
        out.push(Piece {
            text: text[at..].to_owned(),
            highlight: false,
        });
    }
    out
}

/// The whole of `text` (a title), its matched words highlighted.
fn highlight_all(parsed: &Parsed, text: &str) -> Vec<Piece> {
    let terms = highlighted_terms(parsed, text);
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut ranges = vec![];
    while let Some(token) = stream.next() {
        if terms.contains_key(&token.text) {
            ranges.push(token.offset_from..token.offset_to);
        }
    }
    pieces(text, &ranges)
}

/// Where the best passage may start: near the first place a word of the query appears.
/// Found by a plain search of the ASCII-lower-cased text (bytes keep their offsets), so a
/// long document is not tokenized whole for each result; `None` when no word is found
/// that way (an accented spelling, say): then the whole text is read.
fn first_match(parsed: &Parsed, text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let starts_word = |at: usize| {
        !lower[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    };
    let ends_word = |at: usize| {
        !lower[at..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric)
    };
    parsed
        .highlighted_words()
        .flat_map(|item| {
            let last = item.words.len() - 1;
            item.words
                .iter()
                .enumerate()
                .map(move |(i, word)| (word, item.prefix && i == last))
        })
        .filter_map(|(word, prefix)| {
            lower
                .match_indices(word.as_str())
                .map(|(at, _)| at)
                .find(|at| starts_word(*at) && (prefix || ends_word(at + word.len())))
        })
        .min()
}

/// The part of `text` around byte `at`: a little before, enough after for a snippet.
fn window(text: &str, at: usize) -> &str {
    let start = text.floor_char_boundary(at.saturating_sub(SNIPPET_CHARS));
    let end = text.ceil_char_boundary(at + 3 * SNIPPET_CHARS);
    &text[start..end]
}

/// The best passage of `text` for the query, its matched words highlighted (empty when
/// none matched). Long texts are read only around their first match.
fn passage(f: Field, parsed: &Parsed, text: &str) -> Vec<Piece> {
    let snippet_of = |text: &str| {
        let generator = SnippetGenerator::new(
            highlighted_terms(parsed, text),
            analyzer(),
            f,
            SNIPPET_CHARS,
        );
        let snippet = generator.snippet(text);
        pieces(snippet.fragment(), snippet.highlighted())
    };
    if let Some(at) = first_match(parsed, text) {
        let found = snippet_of(window(text, at));
        if found.iter().any(|p| p.highlight) {
            return found;
        }
    }
    snippet_of(text)
}

impl SearchIndex {
    /// Runs `request` on the index as last committed.
    pub fn search(&self, request: &Request) -> Result<Results, SearchError> {
        let f = self.fields;
        if request.scope.is_empty() {
            return Ok(Results {
                hits: vec![],
                total: 0,
                total_is_lower_bound: false,
            });
        }
        let searcher = self.reader.searcher();
        let text = text_query(&f, &request.query)
            .weight(EnableScoring::enabled_from_searcher(&searcher))?;
        let filter =
            filter_query(&f, request).weight(EnableScoring::disabled_from_searcher(&searcher))?;
        let key = filter_key(request);
        let keep = request.offset + request.limit.max(1);
        let mut top = vec![];
        let mut total = 0;
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let allowed = self.filters.bits(segment, &key, &*filter)?;
            let mut ranked = Ranked::new(keep, segment, request.now_micros);
            rank(&*text, segment, &allowed, &mut ranked)?;
            top.extend(ranked.into_top(ord as u32));
            if total <= COUNTED_UP_TO {
                total += count(&*text, segment, &allowed, COUNTED_UP_TO + 1 - total)?;
            }
        }
        top.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut hits = Vec::with_capacity(request.limit);
        for (score, address) in top.into_iter().skip(request.offset).take(request.limit) {
            hits.push(self.hit(&searcher, address, score, &request.query)?);
        }
        Ok(Results {
            hits,
            total: total.min(COUNTED_UP_TO),
            total_is_lower_bound: total > COUNTED_UP_TO,
        })
    }

    fn hit(
        &self,
        searcher: &tantivy::Searcher,
        address: DocAddress,
        score: Score,
        parsed: &Parsed,
    ) -> Result<Hit, SearchError> {
        let f = self.fields;
        let doc: TantivyDocument = searcher.doc(address)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let is_comment = text(f.kind) == "comment";
        let title = if is_comment {
            text(f.document_title)
        } else {
            text(f.title)
        };
        let body = text(f.body);
        let updated = doc
            .get_first(f.updated)
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let mut snippet = passage(f.body, parsed, &body);
        if !snippet.iter().any(|p| p.highlight) {
            // Only the title matched: the text's start says what the document is.
            snippet = vec![Piece {
                text: body.chars().take(SNIPPET_CHARS).collect(),
                highlight: false,
            }];
            snippet.retain(|p| !p.text.is_empty());
        }
        // A comment's document title is context: nothing in it was matched.
        let title_highlight = if is_comment {
            vec![Piece {
                text: title.clone(),
                highlight: false,
            }]
        } else {
            highlight_all(parsed, &title)
        };
        let of_comment = |field| Some(text(field)).filter(|_| is_comment);
        Ok(Hit {
            kind: if is_comment { "comment" } else { "document" },
            thread_id: of_comment(f.thread),
            comment_id: of_comment(f.comment),
            document_id: text(f.document),
            workspace_id: text(f.workspace),
            title,
            folder: text(f.folder),
            updated_at: chrono::DateTime::from_timestamp_micros(updated).unwrap_or_default(),
            score,
            title_highlight,
            snippet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn highlighted(pieces: &[Piece]) -> Vec<&str> {
        pieces
            .iter()
            .filter(|p| p.highlight)
            .map(|p| p.text.as_str())
            .collect()
    }

    /// An index of `n` documents over three workspaces, several segments, a few deleted:
    /// words drawn so that some are in most documents and some in few.
    fn corpus(n: u32) -> (SearchIndex, Vec<Uuid>) {
        let index = SearchIndex::open(None).unwrap();
        let f = index.fields;
        let workspaces: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let vocabulary = [
            "the", "of", "budget", "plan", "river", "stone", "market", "quiet", "orbit", "lantern",
        ];
        let mut writer = index.writer().unwrap();
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for i in 0..n {
            let words: Vec<&str> = (0..(5 + next() % 40))
                .map(|_| vocabulary[(next() % 10).min(next() % 10)])
                .collect();
            let mut doc = TantivyDocument::default();
            doc.add_text(f.key, format!("document:{i}"));
            doc.add_text(f.kind, "document");
            doc.add_text(f.workspace, workspaces[i as usize % 3].to_string());
            doc.add_text(f.document, Uuid::now_v7().to_string());
            doc.add_text(f.folders, "/");
            doc.add_text(f.creator, if i % 7 == 0 { "alice" } else { "bob" });
            doc.add_text(f.title, words[..3.min(words.len())].join(" "));
            doc.add_text(f.body, words.join(" "));
            doc.add_text(f.pairs, words.join(" "));
            doc.add_i64(f.updated, (next() % 200) as i64 * 86_400_000_000);
            writer.add_document(doc).unwrap();
            if i % 500 == 499 {
                writer.commit().unwrap();
            }
        }
        for i in (0..n).step_by(11) {
            writer.delete_term(term(f.key, &format!("document:{i}")));
        }
        writer.commit().unwrap();
        index.reader.reload().unwrap();
        assert!(index.reader.searcher().segment_readers().len() > 1);
        (index, workspaces)
    }

    /// The top entries by scoring every match (no pruning), as tantivy's own collector has
    /// them: what ranking must reproduce exactly.
    fn scored_in_full(index: &SearchIndex, request: &Request) -> Vec<(Score, DocAddress)> {
        use tantivy::collector::TopDocs;
        use tantivy::query::ConstScoreQuery;
        let f = index.fields;
        let query = BooleanQuery::new(vec![
            (Occur::Must, text_query(&f, &request.query)),
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(filter_query(&f, request), 0.0)),
            ),
        ]);
        let now = request.now_micros;
        let collector = TopDocs::with_limit(request.limit)
            .and_offset(request.offset)
            .tweak_score(move |segment: &SegmentReader| {
                let updated = segment
                    .fast_fields()
                    .i64("updated")
                    .map(|c| c.first_or_default_col(0))
                    .unwrap();
                move |doc, score: Score| {
                    let days = (now - updated.get_val(doc)).max(0) as f64 / 86_400e6;
                    score
                        * (1.0 + RECENCY_WEIGHT * 0.5f64.powf(days / RECENCY_HALF_LIFE_DAYS))
                            as Score
                }
            });
        index.reader.searcher().search(&query, &collector).unwrap()
    }

    #[test]
    fn ranking_with_skipping_equals_scoring_every_match() {
        let (index, workspaces) = corpus(3000);
        let f = index.fields;
        let all = Scope {
            workspaces: workspaces.clone(),
            ..Scope::default()
        };
        let own = Scope {
            own_in: vec![workspaces[1]],
            user: "alice".into(),
            ..Scope::default()
        };
        for (raw, scope) in [
            ("the ", &all),
            ("lantern ", &all),
            ("budget plan ", &all),
            ("\"of the\" ", &all),
            ("river OR orbit -quiet ", &all),
            ("mar", &all),
            ("the ", &own),
            ("stone ", &own),
        ] {
            for (offset, limit) in [(0, 20), (40, 20), (0, 1)] {
                let request = Request {
                    query: crate::query::parse(raw).unwrap(),
                    scope: scope.clone(),
                    workspace: None,
                    folder: None,
                    kind: None,
                    offset,
                    limit,
                    now_micros: 200 * 86_400_000_000,
                };
                let expected = scored_in_full(&index, &request);
                let found = index.search(&request).unwrap();
                let key = |address: DocAddress| {
                    let doc: TantivyDocument = index.reader.searcher().doc(address).unwrap();
                    doc.get_first(f.key).unwrap().as_str().unwrap().to_owned()
                };
                let expected: Vec<(String, Score)> =
                    expected.into_iter().map(|(s, a)| (key(a), s)).collect();
                assert_eq!(found.hits.len(), expected.len(), "{raw} at {offset}");
                for (hit, (_, score)) in found.hits.iter().zip(&expected) {
                    assert!(
                        (hit.score - score).abs() < 1e-4,
                        "{raw} at {offset}: {} vs {score}",
                        hit.score
                    );
                }
            }
        }
    }

    #[test]
    fn the_total_is_counted_up_to_a_thousand() {
        let (index, workspaces) = corpus(3000);
        let request = |raw: &str, workspaces: Vec<Uuid>| Request {
            query: crate::query::parse(raw).unwrap(),
            scope: Scope {
                workspaces,
                ..Scope::default()
            },
            workspace: None,
            folder: None,
            kind: None,
            offset: 0,
            limit: 5,
            now_micros: 0,
        };
        let common = index.search(&request("the ", workspaces.clone())).unwrap();
        assert_eq!((common.total, common.total_is_lower_bound), (1000, true));
        // Under the bound the count is exact: one workspace's documents with "lantern".
        let mut exact = 0;
        let searcher = index.reader.searcher();
        let f = index.fields;
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(1).unwrap();
            for doc in segment.doc_ids_alive() {
                let doc: TantivyDocument = store.get(doc).unwrap();
                let text = |field| doc.get_first(field).unwrap().as_str().unwrap().to_owned();
                if text(f.workspace) == workspaces[2].to_string()
                    && (text(f.body).split(' ').any(|w| w == "lantern"))
                {
                    exact += 1;
                }
            }
        }
        assert!(exact > 0 && exact < 1000, "{exact}");
        let rare = index
            .search(&request("lantern ", vec![workspaces[2]]))
            .unwrap();
        assert_eq!((rare.total, rare.total_is_lower_bound), (exact, false));
    }

    #[test]
    fn a_long_texts_passage_is_read_around_its_first_match() {
        let (_, f) = crate::index::schema();
        let filler = "Plain filler words. ".repeat(1000);
        let text = format!("{filler}The zephyr winds, a Café.{filler}");
        let pieces = passage(f.body, &crate::query::parse("zephyr ").unwrap(), &text);
        assert_eq!(highlighted(&pieces), vec!["zephyr"]);
        assert!(pieces.iter().map(|p| p.text.len()).sum::<usize>() <= 4 * SNIPPET_CHARS);
        // An accented spelling is not found by the plain search: the whole text is read.
        let pieces = passage(f.body, &crate::query::parse("cafe ").unwrap(), &text);
        assert_eq!(highlighted(&pieces), vec!["Café"]);
        // The typed prefix highlights the words it stands for.
        let pieces = passage(f.body, &crate::query::parse("zeph").unwrap(), &text);
        assert_eq!(highlighted(&pieces), vec!["zephyr"]);
        // A word found inside another ("zephyrs" for "zephyr") does not place the window.
        let text = format!("Zephyrs blow. {filler} A zephyr here.");
        let pieces = passage(f.body, &crate::query::parse("zephyr ").unwrap(), &text);
        assert_eq!(highlighted(&pieces), vec!["zephyr"]);
        // Multi-byte text around the match cuts on character boundaries.
        let text = format!("{} zephyr {}", "é".repeat(400), "ü".repeat(400));
        let pieces = passage(f.body, &crate::query::parse("zephyr ").unwrap(), &text);
        assert_eq!(highlighted(&pieces), vec!["zephyr"]);
        // No match: nothing highlighted.
        let pieces = passage(f.body, &crate::query::parse("absent ").unwrap(), &text);
        assert!(highlighted(&pieces).is_empty());
    }
}
