//! The index itself: its schema, its analyzer, where it lives, and the checkpoint it keeps
//! in its own commits (so an instance restarts where its index left off).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, STORED,
    STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy};

use crate::pairs::PairFilter;
use crate::SearchError;

/// The analyzer of titles, bodies and queries: words (letters and digits), lower-cased and
/// folded to ASCII, so "Café" finds "cafe" and the other way round. No stemming: documents
/// are in any language.
pub const ANALYZER: &str = "folded";

/// The index's format: bumped whenever the schema, the analyzer or what is extracted
/// changes. An index of another format is emptied and refilled from the log.
pub const FORMAT: u32 = 4;

/// The analyzer of the `pairs` field: the adjacent words with a common word among them
/// (see [`crate::pairs`]).
pub const PAIR_ANALYZER: &str = "pairs";

/// Memory the writer may fill before it flushes a segment.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub(crate) fn pair_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(PairFilter)
        .build()
}

/// The words of `text` as the index stores them.
pub fn words(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = vec![];
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

/// What the entries of the index hold.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// `document:<id>` or `comment:<id>`: what an entry is replaced and deleted by.
    pub key: Field,
    /// `document` or `comment`.
    pub kind: Field,
    pub workspace: Field,
    pub document: Field,
    /// The folder and every folder above it (`/`, `/a`, `/a/b`), for the folder filter.
    pub folders: Field,
    /// The folder as shown.
    pub folder: Field,
    pub creator: Field,
    pub title: Field,
    pub body: Field,
    /// The text's adjacent words with a common word among them, each pair one term: what
    /// phrases of frequent words are looked up in.
    pub pairs: Field,
    /// When the document last changed (metadata or content), microseconds since the epoch:
    /// the recency part of the ranking.
    pub updated: Field,
    /// A comment's thread (what its entries are remade by) and the comment itself.
    pub thread: Field,
    pub comment: Field,
    /// A comment's document's title: shown with the comment, not searched.
    pub document_title: Field,
}

pub(crate) fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let pairs = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(PAIR_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        key: builder.add_text_field("key", STRING | STORED),
        kind: builder.add_text_field("kind", STRING | STORED),
        workspace: builder.add_text_field("workspace", STRING | STORED),
        document: builder.add_text_field("document", STRING | STORED),
        folders: builder.add_text_field("folders", STRING),
        folder: builder.add_text_field("folder", STORED),
        creator: builder.add_text_field("creator", STRING | STORED),
        title: builder.add_text_field("title", text.clone()),
        body: builder.add_text_field("body", text),
        pairs: builder.add_text_field("pairs", pairs),
        updated: builder
            .add_i64_field("updated", NumericOptions::default().set_fast().set_stored()),
        thread: builder.add_text_field("thread", STRING | STORED),
        comment: builder.add_text_field("comment", STORED),
        document_title: builder.add_text_field("document_title", STORED),
    };
    (builder.build(), fields)
}

/// What the index reflects, written with each of its commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// Which log: the id of its first event (`empty` before there is one). An index made
    /// from another database's log is refilled.
    pub log: String,
    /// Every event up to this position is reflected.
    pub position: i64,
    /// The id of the event at `position`: a log restored to an earlier point (its positions
    /// reused by other events) is told apart.
    #[serde(default)]
    pub event: Option<String>,
}

/// An index on disk (or in memory), with its reader.
pub struct SearchIndex {
    pub(crate) index: Index,
    pub(crate) fields: Fields,
    pub(crate) reader: IndexReader,
    /// Callers' scopes as bit sets, per segment.
    pub(crate) filters: crate::search::FilterCache,
}

impl SearchIndex {
    /// Opens the index in `dir` (made if missing), or a new one in memory without a
    /// directory.
    pub fn open(dir: Option<&Path>) -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        let index = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    SearchError::Directory(format!("cannot create {}: {e}", dir.display()))
                })?;
                let directory = MmapDirectory::open(dir).map_err(|e| {
                    SearchError::Directory(format!("cannot open {}: {e}", dir.display()))
                })?;
                let index = Index::open_or_create(directory, schema.clone())?;
                if index.schema() != schema {
                    // Another format's index: start a new one in its place.
                    drop(index);
                    std::fs::remove_dir_all(dir).map_err(|e| {
                        SearchError::Directory(format!("cannot empty {}: {e}", dir.display()))
                    })?;
                    std::fs::create_dir_all(dir).map_err(|e| {
                        SearchError::Directory(format!("cannot create {}: {e}", dir.display()))
                    })?;
                    Index::create_in_dir(dir, schema)?
                } else {
                    index
                }
            }
            None => Index::create_in_ram(schema),
        };
        Self::with_reader(index, fields)
    }

    /// Opens the index in `dir` as it is, to read it (`collab search dump`): an index of
    /// another format is an error, never replaced.
    pub fn open_existing(dir: &Path) -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        let index = Index::open_in_dir(dir)
            .map_err(|e| SearchError::Directory(format!("no index in {}: {e}", dir.display())))?;
        if index.schema() != schema {
            return Err(SearchError::Directory(format!(
                "the index in {} is of another format: run `collab search rebuild`",
                dir.display()
            )));
        }
        Self::with_reader(index, fields)
    }

    /// The analyzer registered, a reader made: ready to search.
    fn with_reader(index: Index, fields: Fields) -> Result<Self, SearchError> {
        index.tokenizers().register(ANALYZER, analyzer());
        index.tokenizers().register(PAIR_ANALYZER, pair_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            fields,
            reader,
            filters: Default::default(),
        })
    }

    /// The checkpoint of the last commit (None: never committed, or another format).
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, SearchError> {
        let metas = self.index.load_metas()?;
        Ok(metas
            .payload
            .and_then(|p| serde_json::from_str::<Checkpoint>(&p).ok())
            .filter(|c| c.format == FORMAT))
    }

    /// The index's only writer (a second one, in this or another process, is refused:
    /// each instance needs a directory of its own).
    pub(crate) fn writer(&self) -> Result<IndexWriter, SearchError> {
        self.index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => SearchError::Directory(
                    "the search index is in use by another process: give each instance its own COLLAB_SEARCH_DIR".into(),
                ),
                other => other.into(),
            })
    }

    /// Every entry, in key order, as JSON lines' values: what a rebuild is compared by.
    pub fn dump(&self) -> Result<Vec<serde_json::Value>, SearchError> {
        use tantivy::schema::Value as _;
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        let f = self.fields;
        let mut out = vec![];
        for segment in searcher.segment_readers() {
            let store = segment
                .get_store_reader(1)
                .map_err(|e| SearchError::Directory(e.to_string()))?;
            for doc_id in segment.doc_ids_alive() {
                let doc: tantivy::TantivyDocument = store.get(doc_id)?;
                let text = |field| {
                    doc.get_first(field)
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                };
                out.push(serde_json::json!({
                    "key": text(f.key),
                    "kind": text(f.kind),
                    "workspace": text(f.workspace),
                    "document": text(f.document),
                    "folder": text(f.folder),
                    "creator": text(f.creator),
                    "title": text(f.title),
                    "document_title": text(f.document_title),
                    "thread": text(f.thread),
                    "comment": text(f.comment),
                    "body": text(f.body),
                    "updated": doc.get_first(f.updated).and_then(|v| v.as_i64()),
                }));
            }
        }
        out.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        Ok(out)
    }
}
