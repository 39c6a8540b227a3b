//! livedex engine — the N-API face. Every method that does I/O returns an `AsyncTask` that
//! runs on the libuv thread pool; a panic anywhere becomes a rejected promise.
//!
//! Metadata crosses as JSON strings, embeddings as Float32Array, chunk ids as i64 (JS number).

mod engine;
mod error;
mod housekeeping;
mod retrieve;
mod split;
mod store;
mod text;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::engine::Engine;
use crate::error::Error as EngineError;
use crate::housekeeping::LookupGuard;

// ───────────────────────────── the task runner ─────────────────────────────

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

type Work<T> = Box<dyn FnOnce() -> std::result::Result<T, EngineError> + Send>;

/// Runs a closure on the libuv pool; its result converts itself to JS.
pub struct Job<T: Send + 'static> {
    work: Option<Work<T>>,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() -> bool {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    }
    // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the kernel.
    unsafe { malloc_trim(0) };
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() -> bool {
    false
}

fn job<T: Send + ToNapiValue + TypeName + 'static>(
    f: impl FnOnce() -> std::result::Result<T, EngineError> + Send + 'static,
) -> AsyncTask<Job<T>> {
    AsyncTask::new(Job {
        work: Some(Box::new(f)),
    })
}

impl<T: Send + ToNapiValue + TypeName + 'static> Task for Job<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> Result<T> {
        let work = self
            .work
            .take()
            .ok_or_else(|| Error::from_reason("livedex engine: task ran twice"))?;
        match catch_unwind(AssertUnwindSafe(work)) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::from_reason(e.0)),
            Err(p) => Err(Error::from_reason(format!(
                "livedex engine panicked: {}",
                panic_message(p)
            ))),
        }
    }

    fn resolve(&mut self, _env: Env, output: T) -> Result<T> {
        Ok(output)
    }
}

// ───────────────────────────── wire types ─────────────────────────────

#[napi(object)]
pub struct NativeChunkWrite {
    pub ordinal: i64,
    pub text: String,
    pub text_hash: String,
    /// JSON: the chunk's own keys when `inherits`, else its complete metadata.
    pub metadata: String,
    /// True when the chunk takes every key it does not set from its document's metadata.
    pub inherits: Option<bool>,
    pub embedding: Option<Float32Array>,
}

#[napi(object)]
pub struct NativeOp {
    /// 'upsert' | 'delete' | 'mark'
    pub op: String,
    pub key: String,
    pub version: Option<String>,
    pub content_hash: Option<String>,
    /// JSON.
    pub metadata: Option<String>,
    pub status: Option<String>,
    pub error: Option<String>,
    pub chunks: Option<Vec<NativeChunkWrite>>,
    /// Chunks handed over before by `stageChunks` under this token; they come before `chunks`.
    pub staged: Option<i64>,
}

#[napi(object)]
pub struct NativeCommittedDocument {
    pub key: String,
    pub removed: Vec<i64>,
    pub added: Vec<i64>,
    pub current: Vec<i64>,
}

#[napi(object)]
pub struct NativeCommitResult {
    pub seq: i64,
    pub documents: Vec<NativeCommittedDocument>,
    pub text_index_error: Option<String>,
}

/// Vectors packed end to end; `lengths[i]` is -1 where there is none.
#[napi(object)]
pub struct NativeVectors {
    pub data: Float32Array,
    pub lengths: Vec<i32>,
}

#[napi(object)]
pub struct NativeTextHit {
    pub id: i64,
    pub score: f64,
}

#[napi(object)]
pub struct NativeChunkRow {
    pub id: i64,
    pub doc_key: String,
    pub ordinal: i64,
    pub text: Option<String>,
    pub text_hash: String,
    /// JSON: the chunk's own keys when `inherits`, else its complete metadata.
    pub metadata: String,
    pub inherits: bool,
}

#[napi(object)]
pub struct NativeDocumentMetadata {
    pub key: String,
    /// JSON.
    pub metadata: String,
}

/// Chunks and, once each, the metadata of the documents they inherit from.
#[napi(object)]
pub struct NativeChunkPage {
    pub rows: Vec<NativeChunkRow>,
    pub documents: Vec<NativeDocumentMetadata>,
}

/// The catalog in one call: ids and offsets as typed arrays, each distinct metadata once.
#[napi(object)]
pub struct NativeCatalog {
    pub keys: Vec<String>,
    pub inherited: Vec<String>,
    pub starts: Uint32Array,
    pub ids: Uint32Array,
    pub meta_of: Uint32Array,
    pub metas: Vec<String>,
    pub meta_inherits: Vec<bool>,
}

#[napi(object)]
pub struct NativeDocumentRow {
    pub key: String,
    pub version: String,
    pub content_hash: Option<String>,
    pub status: String,
    pub error: Option<String>,
    /// JSON.
    pub metadata: String,
    pub chunk_count: i64,
    pub seen_at: Option<i64>,
    pub indexed_at: Option<i64>,
}

#[napi(object)]
pub struct NativeStats {
    pub documents: i64,
    pub pending: i64,
    pub indexed: i64,
    pub failed: i64,
    pub chunks: i64,
    pub last_seq: i64,
    pub text_index_seq: i64,
    pub last_modified: Option<f64>,
    pub last_indexed: Option<i64>,
}

#[napi(object)]
pub struct NativeEmbeddingPass {
    pub keep_models: Vec<String>,
    pub grace_ms: i64,
    pub after_model: Option<String>,
    pub after_hash: Option<String>,
    pub limit: u32,
    /// `markedLookupCount` as read before the batch; absent: mark only, delete nothing.
    pub quiet_lookups: Option<i64>,
}

#[napi(object)]
pub struct NativeEmbeddingBatch {
    pub scanned: i64,
    pub marked: i64,
    pub revived: i64,
    pub deleted: i64,
    pub deferred: i64,
    pub next_model: Option<String>,
    pub next_hash: Option<String>,
}

#[napi(object)]
pub struct NativeHousekeepingCounts {
    pub embeddings: i64,
    pub embeddings_unused: i64,
    pub change_log: i64,
    pub page_count: i64,
    pub freelist_count: i64,
    pub page_size: i64,
}

/// The change-log sequence the text index in `dir` (a data dir) claims; null when it has none
/// usable. Reads only; safe beside a running server.
#[napi(catch_unwind)]
pub fn text_index_seq(dir: String) -> AsyncTask<Job<Option<i64>>> {
    job(move || {
        Ok(housekeeping::text_index_seq(
            &std::path::Path::new(&dir).join(engine::TEXT_DIR),
        ))
    })
}

fn pack_vectors(vs: Vec<Option<Vec<f32>>>) -> NativeVectors {
    let total: usize = vs.iter().map(|v| v.as_ref().map_or(0, |v| v.len())).sum();
    let mut data = Vec::with_capacity(total);
    let mut lengths = Vec::with_capacity(vs.len());
    for v in vs {
        match v {
            Some(v) => {
                lengths.push(v.len() as i32);
                data.extend_from_slice(&v);
            }
            None => lengths.push(-1),
        }
    }
    NativeVectors {
        data: Float32Array::new(data),
        lengths,
    }
}

fn chunk_page(p: store::ChunkPage) -> NativeChunkPage {
    NativeChunkPage {
        rows: p
            .rows
            .into_iter()
            .map(|r| NativeChunkRow {
                id: r.id,
                doc_key: r.doc_key,
                ordinal: r.ordinal,
                text: r.text,
                text_hash: r.text_hash,
                metadata: r.metadata,
                inherits: r.inherits,
            })
            .collect(),
        documents: p
            .documents
            .into_iter()
            .map(|(key, metadata)| NativeDocumentMetadata { key, metadata })
            .collect(),
    }
}

fn chunk_in(c: NativeChunkWrite) -> store::ChunkIn {
    store::ChunkIn {
        ordinal: c.ordinal,
        text: c.text,
        text_hash: c.text_hash,
        metadata: c.metadata,
        inherits: c.inherits.unwrap_or(false),
        embedding: c.embedding.map(|e| e.to_vec()),
    }
}

/// Chunks handed over in slices ahead of their commit (a huge document converts in many short
/// steps on the JS thread instead of one long one).
#[derive(Default)]
struct Staged {
    next: AtomicI64,
    chunks: Mutex<HashMap<i64, Vec<store::ChunkIn>>>,
}

impl Staged {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<store::ChunkIn>>> {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn doc_row(r: store::DocumentRow) -> NativeDocumentRow {
    NativeDocumentRow {
        key: r.key,
        version: r.version,
        content_hash: r.content_hash,
        status: r.status,
        error: r.error,
        metadata: r.metadata,
        chunk_count: r.chunk_count,
        seen_at: r.seen_at,
        indexed_at: r.indexed_at,
    }
}

fn to_op(op: NativeOp, staged: &Staged) -> std::result::Result<store::Op, EngineError> {
    let key = op.key;
    if key.is_empty() {
        return Err(EngineError::msg("an operation has an empty document key"));
    }
    let need = |v: Option<String>, field: &str| {
        v.ok_or_else(|| EngineError(format!("{} of document {key:?}: missing {field}", op.op)))
    };
    match op.op.as_str() {
        "upsert" => {
            let version = need(op.version, "version")?;
            let content_hash = need(op.content_hash, "contentHash")?;
            let metadata = need(op.metadata, "metadata")?;
            let mut chunks = match op.staged {
                None => Vec::new(),
                Some(token) => staged.lock().remove(&token).ok_or_else(|| {
                    EngineError(format!("upsert of document {key:?}: no chunks staged under {token}"))
                })?,
            };
            chunks.extend(op.chunks.unwrap_or_default().into_iter().map(chunk_in));
            Ok(store::Op::Upsert {
                key,
                version,
                content_hash,
                metadata,
                chunks,
            })
        }
        "delete" => Ok(store::Op::Delete { key }),
        "mark" => {
            let version = need(op.version, "version")?;
            let status = need(op.status, "status")?;
            let metadata = need(op.metadata, "metadata")?;
            Ok(store::Op::Mark {
                key,
                version,
                status,
                error: op.error,
                metadata,
            })
        }
        other => Err(EngineError(format!(
            "unknown operation {other:?} for document {key:?}"
        ))),
    }
}

// ───────────────────────────── the engine class ─────────────────────────────

#[napi]
pub struct NativeEngine {
    inner: Arc<Engine>,
    staged: Staged,
    lookups: Arc<LookupGuard>,
}

/// How the text index analyzes text (see `text::Analyzer`); every field optional.
#[napi(object)]
pub struct NativeAnalyzer {
    pub language: Option<String>,
    pub stop_words: Option<bool>,
    pub ascii_folding: Option<bool>,
}

/// Opens (creating if needed) the data dir `dir`. Read-write takes the dir's lock, replays the
/// change log into the text index, or rebuilds it when it is missing, outdated, or built with
/// another analyzer. Read-only uses the analyzer the index was built with.
#[napi(catch_unwind)]
pub fn open_engine(
    dir: String,
    read_only: bool,
    analyzer: Option<NativeAnalyzer>,
) -> AsyncTask<Job<NativeEngine>> {
    job(move || {
        let d = text::Analyzer::default();
        let analyzer = match analyzer {
            None => d,
            Some(a) => text::Analyzer::new(
                a.language.as_deref().unwrap_or(&d.language),
                a.stop_words.unwrap_or(d.stop_words),
                a.ascii_folding.unwrap_or(d.ascii_folding),
            )?,
        };
        Ok(NativeEngine {
            inner: Arc::new(Engine::open(&dir, read_only, &analyzer)?),
            staged: Staged::default(),
            lookups: Arc::new(LookupGuard::default()),
        })
    })
}

#[napi]
impl NativeEngine {
    #[napi(getter)]
    pub fn dir(&self) -> String {
        self.inner.dir.to_string_lossy().into_owned()
    }

    #[napi(getter)]
    pub fn read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Why the text index was rebuilt on open (null if it was not).
    #[napi(getter)]
    pub fn rebuilt(&self) -> Option<String> {
        self.inner.rebuilt.clone()
    }

    /// Commits `ops` in one store transaction, then applies them to the text index. With
    /// `hold`, reads and searches see none of it until `publish` (or until a commit that fails).
    #[napi(catch_unwind)]
    pub fn commit(
        &self,
        model: String,
        ops: Vec<NativeOp>,
        hold: Option<bool>,
    ) -> Result<AsyncTask<Job<NativeCommitResult>>> {
        let ops = ops
            .into_iter()
            .map(|op| to_op(op, &self.staged))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::from_reason(e.0))?;
        let inner = self.inner.clone();
        Ok(job(move || {
            let (out, text_err) = inner.commit(&model, ops, hold.unwrap_or(false))?;
            Ok(NativeCommitResult {
                seq: out.seq,
                documents: out
                    .documents
                    .into_iter()
                    .map(|d| NativeCommittedDocument {
                        key: d.key,
                        removed: d.removed,
                        added: d.added,
                        current: d.current,
                    })
                    .collect(),
                text_index_error: text_err,
            })
        }))
    }

    /// Holds `chunks` for a later `commit` (appended to `token`'s, or under a new token when
    /// it is null); returns the token. Synchronous: each call converts one slice.
    #[napi(catch_unwind)]
    pub fn stage_chunks(&self, token: Option<i64>, chunks: Vec<NativeChunkWrite>) -> Result<i64> {
        let token = token.unwrap_or_else(|| self.staged.next.fetch_add(1, Ordering::Relaxed) + 1);
        self.staged.lock().entry(token).or_default().extend(chunks.into_iter().map(chunk_in));
        Ok(token)
    }

    /// Forgets chunks staged under `token` (their commit did not happen).
    #[napi(catch_unwind)]
    pub fn drop_staged(&self, token: i64) {
        self.staged.lock().remove(&token);
    }

    /// Makes what held commits wrote visible to reads and searches.
    #[napi(catch_unwind)]
    pub fn publish(&self) -> AsyncTask<Job<()>> {
        let inner = self.inner.clone();
        job(move || inner.publish())
    }

    /// Gives memory freed by the process back to the system; true when the allocator has a way.
    /// glibc keeps freed heap in each thread's arena for reuse, so after a large document (its
    /// text, chunks and index buffers, freed) the process would stay hundreds of MB larger.
    #[napi(catch_unwind)]
    pub fn release_memory(&self) -> AsyncTask<Job<bool>> {
        job(|| Ok(release_freed_memory()))
    }

    #[napi(catch_unwind)]
    pub fn lookup_embeddings(
        &self,
        model: String,
        text_hashes: Vec<String>,
    ) -> AsyncTask<Job<NativeVectors>> {
        let inner = self.inner.clone();
        let lookups = self.lookups.clone();
        job(move || {
            let _reading = lookups.lookup();
            let (vectors, hit_marked) =
                inner.read(|c| store::lookup_embeddings(c, &model, &text_hashes))?;
            if hit_marked {
                lookups.found_marked();
            }
            Ok(pack_vectors(vectors))
        })
    }

    #[napi(catch_unwind)]
    pub fn chunk_embeddings(&self, model: String, ids: Vec<i64>) -> AsyncTask<Job<NativeVectors>> {
        let inner = self.inner.clone();
        job(move || {
            Ok(pack_vectors(
                inner.read(|c| store::chunk_embeddings(c, &model, &ids))?,
            ))
        })
    }

    #[napi(catch_unwind)]
    pub fn search_text(
        &self,
        query: String,
        k: u32,
        allowed_ids: Option<Vec<i64>>,
    ) -> AsyncTask<Job<Vec<NativeTextHit>>> {
        let inner = self.inner.clone();
        job(move || {
            let hits = inner.search(&query, k as usize, allowed_ids.as_deref())?;
            Ok(hits
                .into_iter()
                .map(|(id, score)| NativeTextHit {
                    id,
                    score: score as f64,
                })
                .collect())
        })
    }

    #[napi(catch_unwind)]
    pub fn get_chunks(&self, ids: Vec<i64>) -> AsyncTask<Job<NativeChunkPage>> {
        let inner = self.inner.clone();
        job(move || Ok(chunk_page(inner.read(|c| store::get_chunks(c, &ids))?)))
    }

    #[napi(catch_unwind)]
    pub fn list_chunks(&self, after_id: i64, limit: u32) -> AsyncTask<Job<NativeChunkPage>> {
        let inner = self.inner.clone();
        job(move || {
            Ok(chunk_page(
                inner.read(|c| store::list_chunks(c, after_id, limit as i64))?,
            ))
        })
    }

    #[napi(catch_unwind)]
    pub fn load_catalog(&self) -> AsyncTask<Job<NativeCatalog>> {
        let inner = self.inner.clone();
        job(move || {
            let d = inner.read(store::catalog_dump)?;
            Ok(NativeCatalog {
                keys: d.keys,
                inherited: d.inherited,
                starts: Uint32Array::new(d.starts),
                ids: Uint32Array::new(d.ids),
                meta_of: Uint32Array::new(d.meta_of),
                metas: d.metas,
                meta_inherits: d.meta_inherits,
            })
        })
    }

    #[napi(catch_unwind)]
    pub fn get_document(&self, key: String) -> AsyncTask<Job<Option<NativeDocumentRow>>> {
        let inner = self.inner.clone();
        job(move || Ok(inner.read(|c| store::get_document(c, &key))?.map(doc_row)))
    }

    #[napi(catch_unwind)]
    pub fn list_documents(&self) -> AsyncTask<Job<Vec<NativeDocumentRow>>> {
        let inner = self.inner.clone();
        job(move || {
            Ok(inner
                .read(store::list_documents)?
                .into_iter()
                .map(doc_row)
                .collect())
        })
    }

    #[napi(catch_unwind)]
    pub fn get_cursor(&self, name: String) -> AsyncTask<Job<Option<String>>> {
        let inner = self.inner.clone();
        job(move || inner.read(|c| store::get_cursor(c, &name)))
    }

    /// Stores embeddings in the cache under `model`: `text_hashes[i]` gets `vectors[i]`.
    #[napi(catch_unwind)]
    pub fn put_embeddings(
        &self,
        model: String,
        text_hashes: Vec<String>,
        vectors: Vec<Float32Array>,
    ) -> Result<AsyncTask<Job<()>>> {
        if text_hashes.len() != vectors.len() {
            return Err(Error::from_reason(format!(
                "putEmbeddings: {} text hashes but {} vectors",
                text_hashes.len(),
                vectors.len()
            )));
        }
        let entries: Vec<(String, Vec<f32>)> =
            text_hashes.into_iter().zip(vectors.iter().map(|v| v.to_vec())).collect();
        let inner = self.inner.clone();
        Ok(job(move || inner.put_embeddings(&model, &entries)))
    }

    #[napi(catch_unwind)]
    pub fn set_cursor(&self, name: String, value: String) -> AsyncTask<Job<()>> {
        let inner = self.inner.clone();
        job(move || inner.set_cursor(&name, &value))
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> AsyncTask<Job<NativeStats>> {
        let inner = self.inner.clone();
        job(move || {
            let s = inner.read(store::stats)?;
            Ok(NativeStats {
                documents: s.documents,
                pending: s.pending,
                indexed: s.indexed,
                failed: s.failed,
                chunks: s.chunks,
                last_seq: s.last_seq,
                text_index_seq: inner.text_index_seq()?,
                last_modified: s.last_modified,
                last_indexed: s.last_indexed,
            })
        })
    }

    /// Embedding lookups so far that found an entry a pass had marked unused (see
    /// `housekeeping::LookupGuard`).
    #[napi(getter)]
    pub fn marked_lookup_count(&self) -> i64 {
        self.lookups.count() as i64
    }

    /// One batch of a pass over the embedding cache: marks unused entries, revives used ones,
    /// deletes those unused for longer than the grace period.
    #[napi(catch_unwind)]
    pub fn prune_embeddings(&self, pass: NativeEmbeddingPass) -> AsyncTask<Job<NativeEmbeddingBatch>> {
        let inner = self.inner.clone();
        let lookups = self.lookups.clone();
        job(move || {
            let after = match (pass.after_model, pass.after_hash) {
                (Some(m), Some(h)) => Some((m, h)),
                _ => None,
            };
            let b = inner.prune_embeddings(
                &lookups,
                housekeeping::EmbeddingPass {
                    keep_models: &pass.keep_models,
                    grace_ms: pass.grace_ms,
                    after,
                    limit: pass.limit.max(1) as i64,
                    quiet_lookups: pass.quiet_lookups.map(|n| n as u64),
                },
            )?;
            let (next_model, next_hash) = match b.next {
                Some((m, h)) => (Some(m), Some(h)),
                None => (None, None),
            };
            Ok(NativeEmbeddingBatch {
                scanned: b.scanned,
                marked: b.marked,
                revived: b.revived,
                deleted: b.deleted,
                deferred: b.deferred,
                next_model,
                next_hash,
            })
        })
    }

    /// Deletes at most `limit` change-log entries at or below `upTo` (never beyond the text
    /// index's committed sequence); resolves with how many.
    #[napi(catch_unwind)]
    pub fn prune_change_log(&self, up_to: i64, limit: u32) -> AsyncTask<Job<i64>> {
        let inner = self.inner.clone();
        job(move || inner.prune_change_log(up_to, limit.max(1) as i64))
    }

    #[napi(catch_unwind)]
    pub fn housekeeping_counts(&self) -> AsyncTask<Job<NativeHousekeepingCounts>> {
        let inner = self.inner.clone();
        job(move || {
            let c = inner.read(housekeeping::counts)?;
            Ok(NativeHousekeepingCounts {
                embeddings: c.embeddings,
                embeddings_unused: c.embeddings_unused,
                change_log: c.change_log,
                page_count: c.page_count,
                freelist_count: c.freelist_count,
                page_size: c.page_size,
            })
        })
    }

    #[napi(catch_unwind)]
    pub fn close(&self) -> AsyncTask<Job<()>> {
        let inner = self.inner.clone();
        job(move || inner.close())
    }
}
