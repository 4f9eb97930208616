//! Running a query: what the caller may read as a filter, relevance (BM25, title matches
//! weighted up, recent documents nudged up), highlighted snippets.

use std::collections::BTreeMap;

use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, Occur, PhrasePrefixQuery, PhraseQuery,
    Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Score, SegmentReader, TantivyDocument, Term};
use uuid::Uuid;

use crate::index::{analyzer, words, Fields, SearchIndex};
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
    /// How many entries match in all.
    pub total: usize,
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

/// An item anywhere: the title (weighted up) or the text.
fn item_anywhere(f: &Fields, item: &Item) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (
            Occur::Should,
            Box::new(BoostQuery::new(item_query(f.title, item), TITLE_BOOST)) as Box<dyn Query>,
        ),
        (Occur::Should, item_query(f.body, item)),
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

/// Matches without adding to the score.
fn filter(query: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
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

/// The whole query: what to match, what the caller may read, the filters asked for.
fn build(f: &Fields, request: &Request) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![];
    for group in &request.query.groups {
        let alternatives: Vec<(Occur, Box<dyn Query>)> = group
            .iter()
            .map(|item| (Occur::Should, item_anywhere(f, item)))
            .collect();
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
    }
    for item in &request.query.excluded {
        clauses.push((Occur::MustNot, item_anywhere(f, item)));
    }
    clauses.push(filter(scope_query(f, &request.scope)));
    if let Some(workspace) = request.workspace {
        clauses.push(filter(any_term(f.workspace, &[workspace.to_string()])));
    }
    if let Some(folder) = &request.folder {
        clauses.push(filter(any_term(f.folders, std::slice::from_ref(folder))));
    }
    if let Some(kind) = request.kind {
        clauses.push(filter(any_term(f.kind, &[kind.as_str().to_owned()])));
    }
    Box::new(BooleanQuery::new(clauses))
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
    let mut start = at.saturating_sub(SNIPPET_CHARS);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 3 * SNIPPET_CHARS).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
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
            });
        }
        let query = build(&f, request);
        let searcher = self.reader.searcher();
        let now = request.now_micros;
        let updated_field = "updated";
        let collector = TopDocs::with_limit(request.limit.max(1))
            .and_offset(request.offset)
            .tweak_score(move |segment: &SegmentReader| {
                let updated = segment
                    .fast_fields()
                    .i64(updated_field)
                    .map(|c| c.first_or_default_col(0))
                    .ok();
                move |doc, score: Score| {
                    let boost = updated.as_ref().map_or(1.0, |column| {
                        let days = (now - column.get_val(doc)).max(0) as f64 / 86_400e6;
                        1.0 + RECENCY_WEIGHT * 0.5f64.powf(days / RECENCY_HALF_LIFE_DAYS)
                    });
                    score * boost as Score
                }
            });
        let (top, total) = searcher.search(&query, &(collector, Count))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            hits.push(self.hit(&searcher, address, score, &request.query)?);
        }
        Ok(Results { hits, total })
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
        let title = text(f.title);
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
        let title_highlight = highlight_all(parsed, &title);
        Ok(Hit {
            kind: match text(f.kind).as_str() {
                "comment" => "comment",
                _ => "document",
            },
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
