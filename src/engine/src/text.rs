//! The BM25 text index (tantivy), derived from the store through the change log.
//!
//! One tantivy document per chunk: `chunk_id` (u64, indexed + fast + stored), `doc_key`
//! (raw string, the delete key), `body` (English stemming analyzer, freqs and positions, not
//! stored). Each commit's payload is `<TEXT_INDEX_VERSION>:<seq>`, the change-log sequence it
//! reflects; a payload with another version tag means the schema or analyzer changed, and the
//! index is rebuilt from the store.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::Connection;
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermSetQuery};
use tantivy::schema::{
    Field, FieldType, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
    STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Context, Error, Result};
use crate::store;

/// Change it whenever the schema or the analyzer changes (including a tantivy upgrade that
/// changes its built-in `en_stem`): existing indexes are then rebuilt from the store.
pub const TEXT_INDEX_VERSION: &str = "v1";
/// The default analyzer's name: tantivy's built-in `en_stem` (kept, so existing indexes stay valid).
const DEFAULT_ANALYZER: &str = "en_stem";
const LANGUAGES: [(&str, Language); 18] = [
    ("arabic", Language::Arabic),
    ("danish", Language::Danish),
    ("dutch", Language::Dutch),
    ("english", Language::English),
    ("finnish", Language::Finnish),
    ("french", Language::French),
    ("german", Language::German),
    ("greek", Language::Greek),
    ("hungarian", Language::Hungarian),
    ("italian", Language::Italian),
    ("norwegian", Language::Norwegian),
    ("portuguese", Language::Portuguese),
    ("romanian", Language::Romanian),
    ("russian", Language::Russian),
    ("spanish", Language::Spanish),
    ("swedish", Language::Swedish),
    ("tamil", Language::Tamil),
    ("turkish", Language::Turkish),
];

/// How chunk text (and a query) becomes BM25 terms: split on non-alphanumerics, drop tokens
/// over 40 bytes, lower-case, then optionally drop the language's stop words, fold accents
/// to ASCII, and stem. Named in the schema, so an index built another way is rebuilt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analyzer {
    /// Stemming language (`english`…), or `none` for no stemming.
    pub language: String,
    pub stop_words: bool,
    pub ascii_folding: bool,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer {
            language: "english".into(),
            stop_words: false,
            ascii_folding: false,
        }
    }
}

fn language(name: &str) -> Option<Language> {
    LANGUAGES.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

impl Analyzer {
    /// Checks the language, and that stop words exist for it.
    pub fn new(language_name: &str, stop_words: bool, ascii_folding: bool) -> Result<Analyzer> {
        let known = || {
            let mut names: Vec<&str> = LANGUAGES.iter().map(|(n, _)| *n).collect();
            names.push("none");
            names.join(", ")
        };
        let lang = match language_name {
            "none" => None,
            name => Some(language(name).ok_or_else(|| {
                Error(format!("text_index.language: unknown language {name:?} (one of: {})", known()))
            })?),
        };
        if stop_words && lang.and_then(StopWordFilter::new).is_none() {
            return Err(Error(format!(
                "text_index.stop_words: no stop-word list for {language_name:?}"
            )));
        }
        Ok(Analyzer {
            language: language_name.into(),
            stop_words,
            ascii_folding,
        })
    }

    /// The tokenizer name in the schema: `en_stem` for the default, else `livedex:<language>[:stop][:fold]`.
    pub fn name(&self) -> String {
        if *self == Analyzer::default() {
            return DEFAULT_ANALYZER.into();
        }
        let mut name = format!("livedex:{}", self.language);
        if self.stop_words {
            name.push_str(":stop");
        }
        if self.ascii_folding {
            name.push_str(":fold");
        }
        name
    }

    /// The analyzer a tokenizer name stands for (an index's own, when opened read-only).
    fn from_name(name: &str) -> Option<Analyzer> {
        if name == DEFAULT_ANALYZER {
            return Some(Analyzer::default());
        }
        let mut parts = name.strip_prefix("livedex:")?.split(':');
        let lang = parts.next()?;
        let (mut stop, mut fold) = (false, false);
        for flag in parts {
            match flag {
                "stop" => stop = true,
                "fold" => fold = true,
                _ => return None,
            }
        }
        Analyzer::new(lang, stop, fold).ok()
    }

    fn build(&self) -> TextAnalyzer {
        let lang = language(&self.language);
        let mut b = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .dynamic();
        if self.stop_words {
            if let Some(stop) = lang.and_then(StopWordFilter::new) {
                b = b.filter_dynamic(stop);
            }
        }
        if self.ascii_folding {
            b = b.filter_dynamic(AsciiFoldingFilter);
        }
        if let Some(l) = lang {
            b = b.filter_dynamic(Stemmer::new(l));
        }
        b.build()
    }

    /// Registers this analyzer with `index` (tokenizers are not stored in the index).
    fn register(&self, index: &Index) {
        index.tokenizers().register(&self.name(), self.build());
    }
}
const WRITER_HEAP: usize = 64_000_000;

#[derive(Clone, Copy)]
pub struct Fields {
    pub chunk_id: Field,
    pub doc_key: Field,
    pub body: Field,
}

pub fn schema(analyzer: &Analyzer) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let chunk_id = b.add_u64_field(
        "chunk_id",
        NumericOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored(),
    );
    let doc_key = b.add_text_field("doc_key", STRING);
    let body = b.add_text_field(
        "body",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(&analyzer.name())
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    (
        b.build(),
        Fields {
            chunk_id,
            doc_key,
            body,
        },
    )
}

fn parse_payload(p: Option<&str>) -> Option<i64> {
    let (tag, seq) = p?.split_once(':')?;
    if tag != TEXT_INDEX_VERSION {
        return None;
    }
    seq.parse::<i64>().ok().filter(|s| *s >= 0)
}

fn payload(seq: i64) -> String {
    format!("{TEXT_INDEX_VERSION}:{seq}")
}

/// The applied sequence of a usable index, or why it is not usable.
/// The tokenizer name of an index's `body` field.
fn body_analyzer(schema: &Schema) -> Option<String> {
    let field = schema.get_field("body").ok()?;
    match schema.get_field_entry(field).field_type() {
        FieldType::Str(opts) => opts.get_indexing_options().map(|i| i.tokenizer().to_string()),
        _ => None,
    }
}

fn check_index(index: &Index, expected: &Schema) -> std::result::Result<i64, String> {
    let found = index.schema();
    if found != *expected {
        let (was, wanted) = (body_analyzer(&found), body_analyzer(expected));
        if was.is_some() && was != wanted {
            return Err(format!(
                "it was built with the analyzer {}, the configuration asks for {}",
                was.unwrap_or_default(),
                wanted.unwrap_or_default()
            ));
        }
        return Err("its schema differs from this build's".into());
    }
    let metas = index
        .load_metas()
        .map_err(|e| format!("cannot read its metadata: {e}"))?;
    parse_payload(metas.payload.as_deref()).ok_or_else(|| {
        format!(
            "its commit payload {:?} is not a livedex {TEXT_INDEX_VERSION} sequence",
            metas.payload
        )
    })
}

pub struct TextIndex {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
}

/// The writer half, held only by the read-write engine (under the commit mutex).
pub struct TextWriter {
    pub writer: IndexWriter<TantivyDocument>,
    /// The change-log sequence the last tantivy commit reflects.
    pub seq: i64,
}

fn new_reader(index: &Index) -> Result<IndexReader> {
    Ok(index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?)
}

fn new_writer(index: &Index) -> Result<IndexWriter<TantivyDocument>> {
    let writer: IndexWriter<TantivyDocument> = index
        .writer_with_num_threads(1, WRITER_HEAP)
        .context(|| "cannot open the text index writer".to_string())?;
    let mut policy = LogMergePolicy::default();
    policy.set_del_docs_ratio_before_merge(0.3);
    writer.set_merge_policy(Box::new(policy));
    Ok(writer)
}

/// Opens the text index read-write: reuses it when usable, rebuilds it from the store when it
/// is missing, unreadable, of another version, or ahead of the store; then replays the change
/// log after its sequence. Returns the index, its writer, and whether it was rebuilt (why).
pub fn open_rw(
    path: &Path,
    conn: &Connection,
    analyzer: &Analyzer,
) -> Result<(TextIndex, TextWriter, Option<String>)> {
    let (schema, fields) = schema(analyzer);
    let last = store::last_seq(conn)?;
    // Tantivy panics on some damaged files instead of failing: a panic means "unreadable" too.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reuse(path, conn, &schema, fields, last, analyzer)
    }))
    .unwrap_or_else(|p| Err(format!("reading it panicked: {}", crate::panic_message(p))));
    match attempt {
        Ok((text, tw)) => Ok((text, tw, None)),
        Err(why) => {
            let (text, tw) = rebuild(path, conn, schema, fields, analyzer)?;
            Ok((text, tw, Some(why)))
        }
    }
}

/// Opens an existing index, checks it, and replays the change log after its sequence.
fn reuse(
    path: &Path,
    conn: &Connection,
    schema: &Schema,
    fields: Fields,
    last: i64,
    analyzer: &Analyzer,
) -> std::result::Result<(TextIndex, TextWriter), String> {
    if !path.join("meta.json").exists() {
        return Err("it does not exist".into());
    }
    let index = Index::open_in_dir(path).map_err(|e| format!("cannot open it: {e}"))?;
    let seq = check_index(&index, schema)?;
    analyzer.register(&index);
    if seq > last {
        return Err(format!(
            "it reflects sequence {seq}, beyond the store's last {last}"
        ));
    }
    let reader = new_reader(&index).map_err(|e| format!("cannot read it: {e}"))?;
    let writer = new_writer(&index).map_err(|e| e.0)?;
    let text = TextIndex {
        index,
        reader,
        fields,
    };
    let mut tw = TextWriter { writer, seq };
    text.apply(conn, &mut tw)
        .map_err(|e| format!("replaying the change log into it failed: {e}"))?;
    Ok((text, tw))
}

fn rebuild(
    path: &Path,
    conn: &Connection,
    schema: Schema,
    fields: Fields,
    analyzer: &Analyzer,
) -> Result<(TextIndex, TextWriter)> {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .context(|| format!("cannot remove the old text index {}", path.display()))?;
    }
    std::fs::create_dir_all(path).context(|| format!("cannot create {}", path.display()))?;
    let dir = MmapDirectory::open(path)
        .map_err(|e| Error(format!("text index {}: {e}", path.display())))?;
    let index = Index::create(dir, schema, Default::default())?;
    analyzer.register(&index);
    let mut writer = new_writer(&index)?;
    // The whole rebuild reads one snapshot of the store and records its last sequence.
    conn.execute_batch("BEGIN")?;
    let res = (|| -> Result<i64> {
        let seq = store::last_seq(conn)?;
        store::all_chunk_texts(conn, |id, key, text| {
            writer.add_document(make_doc(&fields, id, key, text))?;
            Ok(())
        })?;
        Ok(seq)
    })();
    let _ = conn.execute_batch("COMMIT");
    let seq = res.context(|| format!("rebuilding the text index {}", path.display()))?;
    let mut pc = writer.prepare_commit()?;
    pc.set_payload(&payload(seq));
    pc.commit()?;
    let reader = new_reader(&index)?;
    Ok((
        TextIndex {
            index,
            reader,
            fields,
        },
        TextWriter { writer, seq },
    ))
}

fn make_doc(f: &Fields, id: i64, key: &str, text: &str) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    d.add_u64(f.chunk_id, id as u64);
    d.add_text(f.doc_key, key);
    d.add_text(f.body, text);
    d
}

impl TextIndex {
    /// Opens an existing text index without a writer (read-only engines), with the analyzer
    /// it was built with (a reader cannot rebuild it for another).
    pub fn open_ro(path: &Path) -> Result<TextIndex> {
        let index = Index::open_in_dir(path).map_err(|e| {
            Error(format!(
                "text index {} cannot be opened ({e}); open the data dir read-write once to rebuild it",
                path.display()
            ))
        })?;
        let analyzer = body_analyzer(&index.schema())
            .and_then(|name| Analyzer::from_name(&name))
            .unwrap_or_default();
        let (schema, fields) = schema(&analyzer);
        check_index(&index, &schema).map_err(|why| {
            Error(format!(
                "text index {} is not usable by this build: {why}; open the data dir read-write once to rebuild it",
                path.display()
            ))
        })?;
        analyzer.register(&index);
        let reader = new_reader(&index)?;
        Ok(TextIndex {
            index,
            reader,
            fields,
        })
    }

    /// The sequence of the last commit on disk (read-only engines read it each time).
    pub fn committed_seq(&self) -> Result<i64> {
        let metas = self.index.load_metas()?;
        Ok(parse_payload(metas.payload.as_deref()).unwrap_or(0))
    }

    /// Applies every change after `tw.seq`: for each changed document, delete its chunks by
    /// key and add its current ones from the store; one tantivy commit with the new sequence.
    /// Idempotent, so replaying after a crash never duplicates nor loses a chunk.
    pub fn apply(&self, conn: &Connection, tw: &mut TextWriter) -> Result<()> {
        self.apply_then(conn, tw, true)
    }

    /// `apply`; with `reload` false, searches keep the previous commit until `reader.reload()`.
    pub fn apply_then(&self, conn: &Connection, tw: &mut TextWriter, reload: bool) -> Result<()> {
        let (keys, max_seq) = store::changes_after(conn, tw.seq)?;
        if keys.is_empty() {
            return Ok(());
        }
        let res = (|| -> Result<()> {
            for key in &keys {
                tw.writer
                    .delete_term(Term::from_field_text(self.fields.doc_key, key));
                store::doc_chunk_texts(conn, key, |id, text| {
                    tw.writer
                        .add_document(make_doc(&self.fields, id, key, text))?;
                    Ok(())
                })?;
            }
            let mut pc = tw.writer.prepare_commit()?;
            pc.set_payload(&payload(max_seq));
            pc.commit()?;
            Ok(())
        })();
        match res {
            Ok(()) => {
                tw.seq = max_seq;
                if reload {
                    self.reader.reload()?;
                }
                Ok(())
            }
            Err(e) => {
                // Drop whatever was staged; the next apply starts again from tw.seq.
                if tw.writer.rollback().is_err() {
                    if let Ok(w) = new_writer(&self.index) {
                        tw.writer = w;
                    }
                }
                Err(e)
            }
        }
    }

    /// BM25 over `body`. The query is tokenized with the field's analyzer, never parsed.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        allowed: Option<&[i64]>,
        reload: bool,
    ) -> Result<Vec<(i64, f32)>> {
        if k == 0 {
            return Ok(vec![]);
        }
        let mut analyzer = self.index.tokenizer_for_field(self.fields.body)?;
        let mut seen = HashSet::new();
        let mut terms = Vec::new();
        {
            let mut stream = analyzer.token_stream(query);
            while stream.advance() {
                let t = &stream.token().text;
                if !t.is_empty() && seen.insert(t.clone()) {
                    terms.push(Term::from_field_text(self.fields.body, t));
                }
            }
        }
        if terms.is_empty() {
            return Ok(vec![]);
        }
        let text_q = BooleanQuery::new_multiterms_query(terms);
        let q: Box<dyn Query> = match allowed {
            None => Box::new(text_q),
            Some(ids) => {
                let id_terms: Vec<Term> = ids
                    .iter()
                    .filter(|&&id| id > 0)
                    .map(|&id| Term::from_field_u64(self.fields.chunk_id, id as u64))
                    .collect();
                if id_terms.is_empty() {
                    return Ok(vec![]);
                }
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, Box::new(text_q) as Box<dyn Query>),
                    (
                        Occur::Must,
                        Box::new(ConstScoreQuery::new(
                            Box::new(TermSetQuery::new(id_terms)),
                            0.0,
                        )),
                    ),
                ]))
            }
        };
        if reload {
            self.reader.reload()?;
        }
        let searcher = self.reader.searcher();
        let limit = k.min(searcher.num_docs() as usize);
        if limit == 0 {
            return Ok(vec![]);
        }
        let top = searcher.search(&*q, &TopDocs::with_limit(limit).order_by_score())?;
        let mut columns: Vec<Option<tantivy::columnar::Column<u64>>> =
            vec![None; searcher.segment_readers().len()];
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let slot = &mut columns[addr.segment_ord as usize];
            if slot.is_none() {
                *slot = Some(
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("chunk_id")?,
                );
            }
            let col = slot.as_ref().expect("column just set");
            match col.first(addr.doc_id) {
                Some(id) => out.push((id as i64, score)),
                None => return Err(Error::msg("text index: a hit has no chunk_id")),
            }
        }
        Ok(out)
    }
}
