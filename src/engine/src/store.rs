//! The durable store (SQLite): documents, chunks, embedding cache, cursors, change log.
//!
//! The store is the source of truth; the text index is derived from it through the change
//! log and can always be rebuilt.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Context, Error, Result};

/// Bumped whenever the schema below changes; `migrate` knows how to get from each older one.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
  key          TEXT PRIMARY KEY,
  version      TEXT NOT NULL DEFAULT '',
  content_hash TEXT,
  status       TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'failed')),
  error        TEXT,
  metadata     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
  chunk_count  INTEGER NOT NULL DEFAULT 0,
  seen_at      INTEGER,
  indexed_at   INTEGER
);
CREATE INDEX IF NOT EXISTS documents_status ON documents(status);
CREATE TABLE IF NOT EXISTS chunks (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  doc_key   TEXT NOT NULL,
  ordinal   INTEGER NOT NULL,
  text      TEXT NOT NULL,
  text_hash TEXT NOT NULL,
  metadata  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_key, ordinal);
CREATE TABLE IF NOT EXISTS embeddings (
  model     TEXT NOT NULL,
  text_hash TEXT NOT NULL,
  vector    BLOB NOT NULL,
  PRIMARY KEY (model, text_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS change_log (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  doc_key TEXT NOT NULL,
  op      TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
  at      INTEGER NOT NULL
);
"#;

/// Version 2 stores a document's metadata once: a chunk keeps only its own keys (those whose
/// value differs from its document's) and inherits the rest on read. Rows written before keep
/// their complete metadata (`inherits = 0`), so an older data dir reads as it did.
///
/// `chunk_metadata` is the metadata the chunks inherit once a later `mark` (a failed or held-back
/// version) replaced `metadata`, so the indexed version keeps serving with its own; NULL: `metadata`.
const SCHEMA_V2: &str = r#"
ALTER TABLE chunks ADD COLUMN inherits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN chunk_metadata TEXT CHECK (chunk_metadata IS NULL OR json_valid(chunk_metadata));
"#;

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(())
}

/// Opens the store read-write, switches it to WAL and brings the schema up to date.
///
/// `synchronous = FULL`: every commit fsyncs the WAL. The text index records the change-log
/// sequence it reflects and fsyncs its own commit; with `NORMAL` a power loss could roll back
/// store commits that the text index already reflects, leaving it ahead of the store (and
/// AUTOINCREMENT would then reuse those sequence numbers). FULL keeps "the store is always
/// at least as new as any index" true; commits are batched, so the extra fsync is cheap.
pub fn open_rw(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context(|| format!("cannot open the store {}", path.display()))?;
    configure(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error(format!(
            "store {}: cannot switch to WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -16000; PRAGMA journal_size_limit = {WAL_CHECKPOINT_BYTES};"
    ))?;
    migrate(&conn).context(|| format!("store {}", path.display()))?;
    Ok(conn)
}

/// Past this size the writer checkpoints the WAL before its next commit (see `checkpoint_wal`),
/// and a WAL reset truncates the file back to it (`journal_size_limit`), so a bulk load leaves
/// a WAL of about this size plus one commit instead of every page it ever wrote.
pub const WAL_CHECKPOINT_BYTES: u64 = 16 << 20;

/// Copies the WAL into the database file (PASSIVE: never waits for readers) when the WAL file
/// is past `WAL_CHECKPOINT_BYTES`. SQLite's own autocheckpoint runs at the end of a commit,
/// while a held commit's pinned reader still reads the snapshot before it, so it can never copy
/// the newest frames, the WAL is never fully copied, never restarts, and grows with every
/// commit. Called before a commit pins (nothing then holds an older snapshot), it copies them
/// all and the commit after it writes the WAL from its start again.
pub fn checkpoint_wal(conn: &Connection, store_path: &Path) -> Result<()> {
    let mut wal = store_path.as_os_str().to_owned();
    wal.push("-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if size > WAL_CHECKPOINT_BYTES {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// Opens a read-only connection (readers beside the writer, or a `readOnly` engine).
pub fn open_ro(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context(|| format!("cannot open the store {} read-only", path.display()))?;
    configure(&conn)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// Checks that a store opened read-only has a schema this build understands.
pub fn check_schema(conn: &Connection) -> Result<()> {
    let v = schema_version(conn)?;
    match v {
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        Some(v) => Err(Error(format!(
            "store schema version {v} differs from this build's {SCHEMA_VERSION}; open it read-write once with this livedex to migrate it"
        ))),
        None => Err(Error::msg("store has no livedex schema (not a livedex data dir, or never opened read-write)")),
    }
}

fn schema_version(conn: &Connection) -> Result<Option<i64>> {
    let has_meta: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !has_meta {
        return Ok(None);
    }
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match v {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Error(format!("unreadable schema_version {s:?} in table meta"))),
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    match schema_version(conn)? {
        None => {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_V1} {SCHEMA_V2} INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
            ))?;
            Ok(())
        }
        Some(1) => {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_V2} UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version'; COMMIT;"
            ))?;
            Ok(())
        }
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        Some(v) if v > SCHEMA_VERSION => Err(Error(format!(
            "schema version {v} was written by a newer livedex (this build knows up to {SCHEMA_VERSION})"
        ))),
        Some(v) => Err(Error(format!("no migration from schema version {v} to {SCHEMA_VERSION}"))),
    }
}

// ───────────────────────────── writes ─────────────────────────────

pub struct ChunkIn {
    pub ordinal: i64,
    pub text: String,
    pub text_hash: String,
    /// JSON: the chunk's own keys when `inherits`, else its complete metadata.
    pub metadata: String,
    /// True when the chunk inherits its document's metadata (every key it does not set itself).
    pub inherits: bool,
    pub embedding: Option<Vec<f32>>,
}

pub enum Op {
    Upsert {
        key: String,
        version: String,
        content_hash: String,
        metadata: String,
        chunks: Vec<ChunkIn>,
    },
    Delete {
        key: String,
    },
    Mark {
        key: String,
        version: String,
        /// `pending` or `failed`.
        status: String,
        error: Option<String>,
        metadata: String,
    },
}

pub struct CommittedDoc {
    pub key: String,
    pub removed: Vec<i64>,
    pub added: Vec<i64>,
    pub current: Vec<i64>,
}

pub struct CommitOut {
    pub seq: i64,
    pub wrote_log: bool,
    pub documents: Vec<CommittedDoc>,
}

pub fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

pub fn blob_to_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Last change-log sequence ever written (0 for a new store). Survives pruning of the log.
pub fn last_seq(conn: &Connection) -> Result<i64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'change_log'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0))
}

/// Applies a batch of operations in ONE transaction; on any error nothing is written.
pub fn commit(conn: &mut Connection, model: &str, ops: Vec<Op>) -> Result<CommitOut> {
    let now = now_secs();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut documents = Vec::with_capacity(ops.len());
    let mut wrote_log = false;
    {
        // 1. The embeddings the batch brings go into the cache first, so that any chunk of
        //    the batch may rely on one provided elsewhere in it.
        let mut put_emb = tx.prepare_cached(
            "INSERT INTO embeddings(model, text_hash, vector) VALUES (?1, ?2, ?3)
             ON CONFLICT(model, text_hash) DO UPDATE SET vector = excluded.vector",
        )?;
        for op in &ops {
            if let Op::Upsert { key, chunks, .. } = op {
                for c in chunks {
                    if let Some(v) = &c.embedding {
                        if v.is_empty() {
                            return Err(Error(format!(
                                "document {key:?}: chunk {} has an empty embedding",
                                c.ordinal
                            )));
                        }
                        put_emb.execute(params![model, c.text_hash, vector_to_blob(v)])?;
                    }
                }
            }
        }

        let mut has_emb =
            tx.prepare_cached("SELECT 1 FROM embeddings WHERE model = ?1 AND text_hash = ?2")?;
        let mut old_chunks = tx.prepare_cached(
            "SELECT id, text_hash FROM chunks WHERE doc_key = ?1 ORDER BY ordinal, id",
        )?;
        let mut keep_chunk = tx.prepare_cached(
            "UPDATE chunks SET ordinal = ?2, metadata = json(?3), inherits = ?4 WHERE id = ?1",
        )?;
        let mut add_chunk = tx.prepare_cached(
            "INSERT INTO chunks(doc_key, ordinal, text, text_hash, metadata, inherits) VALUES (?1, ?2, ?3, ?4, json(?5), ?6)",
        )?;
        let mut del_chunk = tx.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
        let mut log =
            tx.prepare_cached("INSERT INTO change_log(doc_key, op, at) VALUES (?1, ?2, ?3)")?;
        let mut doc_exists = tx.prepare_cached("SELECT 1 FROM documents WHERE key = ?1")?;

        for op in ops {
            match op {
                Op::Upsert {
                    key,
                    version,
                    content_hash,
                    metadata,
                    chunks,
                } => {
                    for c in &chunks {
                        if c.embedding.is_none() && !has_emb.exists(params![model, c.text_hash])? {
                            return Err(Error(format!(
                                "document {key:?}: chunk {} has no embedding and none is cached for model {model:?} (text hash {}); nothing was committed",
                                c.ordinal, c.text_hash
                            )));
                        }
                    }
                    // Multiset match by text hash: an old chunk whose text reappears keeps its id.
                    let mut by_hash: HashMap<String, VecDeque<i64>> = HashMap::new();
                    let mut old_order: Vec<i64> = Vec::new();
                    {
                        let rows = old_chunks.query_map(params![key], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                        })?;
                        for row in rows {
                            let (id, h) = row?;
                            old_order.push(id);
                            by_hash.entry(h).or_default().push_back(id);
                        }
                    }
                    let mut sorted: Vec<ChunkIn> = chunks;
                    sorted.sort_by_key(|c| c.ordinal);
                    let mut added = Vec::new();
                    let mut current = Vec::with_capacity(sorted.len());
                    let mut kept = std::collections::HashSet::new();
                    for c in &sorted {
                        let reuse = by_hash.get_mut(&c.text_hash).and_then(|q| q.pop_front());
                        let id = match reuse {
                            Some(id) => {
                                keep_chunk
                                    .execute(params![id, c.ordinal, c.metadata, c.inherits])
                                    .context(|| format!("document {key:?}: chunk {}", c.ordinal))?;
                                kept.insert(id);
                                id
                            }
                            None => {
                                add_chunk
                                    .execute(params![
                                        key,
                                        c.ordinal,
                                        c.text,
                                        c.text_hash,
                                        c.metadata,
                                        c.inherits
                                    ])
                                    .context(|| format!("document {key:?}: chunk {}", c.ordinal))?;
                                let id = tx.last_insert_rowid();
                                added.push(id);
                                id
                            }
                        };
                        current.push(id);
                    }
                    let mut removed = Vec::new();
                    for id in old_order {
                        if !kept.contains(&id) {
                            del_chunk.execute(params![id])?;
                            removed.push(id);
                        }
                    }
                    tx.execute(
                        "INSERT INTO documents(key, version, content_hash, status, error, metadata, chunk_count, seen_at, indexed_at)
                         VALUES (?1, ?2, ?3, 'indexed', NULL, json(?4), ?5, ?6, ?6)
                         ON CONFLICT(key) DO UPDATE SET version = excluded.version, content_hash = excluded.content_hash,
                           status = 'indexed', error = NULL, metadata = excluded.metadata, chunk_metadata = NULL,
                           chunk_count = excluded.chunk_count, seen_at = excluded.seen_at, indexed_at = excluded.indexed_at",
                        params![key, version, content_hash, metadata, current.len() as i64, now],
                    )
                    .context(|| format!("document {key:?}"))?;
                    log.execute(params![key, "upsert", now])?;
                    wrote_log = true;
                    documents.push(CommittedDoc {
                        key,
                        removed,
                        added,
                        current,
                    });
                }
                Op::Delete { key } => {
                    let removed: Vec<i64> = {
                        let rows = old_chunks.query_map(params![key], |r| r.get::<_, i64>(0))?;
                        rows.collect::<std::result::Result<_, _>>()?
                    };
                    let existed = doc_exists.exists(params![key])?;
                    for id in &removed {
                        del_chunk.execute(params![id])?;
                    }
                    tx.execute("DELETE FROM documents WHERE key = ?1", params![key])?;
                    if existed || !removed.is_empty() {
                        log.execute(params![key, "delete", now])?;
                        wrote_log = true;
                    }
                    documents.push(CommittedDoc {
                        key,
                        removed,
                        added: vec![],
                        current: vec![],
                    });
                }
                Op::Mark {
                    key,
                    version,
                    status,
                    error,
                    metadata,
                } => {
                    if status != "pending" && status != "failed" {
                        return Err(Error(format!(
                            "document {key:?}: mark status must be 'pending' or 'failed', got {status:?}"
                        )));
                    }
                    // A new document gets a row either way; `pending` keeps an existing row's
                    // version (so an interrupted re-index is re-sent), `failed` records it.
                    tx.execute(
                        "INSERT INTO documents(key, version, content_hash, status, error, metadata, chunk_count, seen_at, indexed_at)
                         VALUES (?1, CASE WHEN ?2 = 'pending' THEN '' ELSE ?3 END, NULL, ?2, ?4, json(?5), 0, ?6, NULL)
                         ON CONFLICT(key) DO UPDATE SET
                           version = CASE WHEN excluded.status = 'pending' THEN documents.version ELSE ?3 END,
                           status = excluded.status, error = excluded.error, metadata = excluded.metadata,
                           chunk_metadata = CASE WHEN documents.chunk_count > 0
                             THEN COALESCE(documents.chunk_metadata, documents.metadata) END,
                           seen_at = excluded.seen_at",
                        params![key, status, version, error, metadata, now],
                    )
                    .context(|| format!("document {key:?}"))?;
                    let current: Vec<i64> = {
                        let rows = old_chunks.query_map(params![key], |r| r.get::<_, i64>(0))?;
                        rows.collect::<std::result::Result<_, _>>()?
                    };
                    documents.push(CommittedDoc {
                        key,
                        removed: vec![],
                        added: vec![],
                        current,
                    });
                }
            }
        }
    }
    let seq = last_seq(&tx)?;
    tx.commit()?;
    Ok(CommitOut {
        seq,
        wrote_log,
        documents,
    })
}

/// Adds embeddings to the cache (one transaction); vectors computed outside a document commit,
/// e.g. when the vector index is rebuilt for a new model.
pub fn put_embeddings(conn: &mut Connection, model: &str, entries: &[(String, Vec<f32>)]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut put = tx.prepare_cached(
            "INSERT INTO embeddings(model, text_hash, vector) VALUES (?1, ?2, ?3)
             ON CONFLICT(model, text_hash) DO UPDATE SET vector = excluded.vector",
        )?;
        for (hash, v) in entries {
            if v.is_empty() {
                return Err(Error(format!("text {hash}: empty embedding")));
            }
            put.execute(params![model, hash, vector_to_blob(v)])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub fn set_cursor(conn: &Connection, name: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO cursors(name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

// ───────────────────────────── reads ─────────────────────────────

/// Distinct document keys changed after `seq`, and the highest sequence among them.
pub fn changes_after(conn: &Connection, seq: i64) -> Result<(Vec<String>, i64)> {
    let mut st = conn.prepare_cached(
        "SELECT doc_key, MAX(seq) FROM change_log WHERE seq > ?1 GROUP BY doc_key",
    )?;
    let mut keys = Vec::new();
    let mut max = seq;
    let rows = st.query_map(params![seq], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (k, s) = row?;
        max = max.max(s);
        keys.push(k);
    }
    Ok((keys, max))
}

/// (id, text) of a document's current chunks.
pub fn doc_chunk_texts(
    conn: &Connection,
    key: &str,
    mut f: impl FnMut(i64, &str) -> Result<()>,
) -> Result<()> {
    let mut st = conn.prepare_cached("SELECT id, text FROM chunks WHERE doc_key = ?1")?;
    let mut rows = st.query(params![key])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let text = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        f(id, text)?;
    }
    Ok(())
}

/// Every chunk's (id, doc_key, text), by ascending id.
pub fn all_chunk_texts(
    conn: &Connection,
    mut f: impl FnMut(i64, &str, &str) -> Result<()>,
) -> Result<()> {
    let mut st = conn.prepare("SELECT id, doc_key, text FROM chunks ORDER BY id")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let key = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        let text = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
        f(id, key, text)?;
    }
    Ok(())
}

/// The cached vector of each text hash under `model` (None where there is none), and whether any
/// of them was an entry a housekeeping pass had marked unused (one a pass may soon delete).
pub fn lookup_embeddings(
    conn: &Connection,
    model: &str,
    hashes: &[String],
) -> Result<(Vec<Option<Vec<f32>>>, bool)> {
    // A store opened read-only that no writer of this version has opened yet lacks
    // `unused_since` (see `housekeeping::ensure_schema`); nothing prunes it, so nothing is marked.
    const MARKED: &str =
        "SELECT vector, unused_since IS NOT NULL FROM embeddings WHERE model = ?1 AND text_hash = ?2";
    let mut st = match conn.prepare_cached(MARKED) {
        Ok(st) => st,
        Err(_) => conn.prepare_cached("SELECT vector, 0 FROM embeddings WHERE model = ?1 AND text_hash = ?2")?,
    };
    let mut out = Vec::with_capacity(hashes.len());
    let mut hit_marked = false;
    for h in hashes {
        let row: Option<(Vec<u8>, bool)> = st
            .query_row(params![model, h], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        out.push(row.map(|(b, marked)| {
            hit_marked |= marked;
            blob_to_vector(&b)
        }));
    }
    Ok((out, hit_marked))
}

pub fn chunk_embeddings(
    conn: &Connection,
    model: &str,
    ids: &[i64],
) -> Result<Vec<Option<Vec<f32>>>> {
    let mut st = conn.prepare_cached(
        "SELECT e.vector FROM chunks c JOIN embeddings e ON e.model = ?1 AND e.text_hash = c.text_hash WHERE c.id = ?2",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let v: Option<Vec<u8>> = st.query_row(params![model, id], |r| r.get(0)).optional()?;
        out.push(v.map(|b| blob_to_vector(&b)));
    }
    Ok(out)
}

pub struct ChunkRow {
    pub id: i64,
    pub doc_key: String,
    pub ordinal: i64,
    pub text: Option<String>,
    pub text_hash: String,
    /// JSON: the chunk's own keys when `inherits`, else its complete metadata.
    pub metadata: String,
    pub inherits: bool,
}

/// Chunks with the metadata their documents lend them, each document's once.
pub struct ChunkPage {
    pub rows: Vec<ChunkRow>,
    /// (document key, metadata JSON) of every document a row in `rows` inherits from.
    pub documents: Vec<(String, String)>,
}

const INHERITED: &str = "SELECT COALESCE(chunk_metadata, metadata) FROM documents WHERE key = ?1";

fn chunk_row(r: &rusqlite::Row<'_>, text: bool) -> rusqlite::Result<ChunkRow> {
    Ok(ChunkRow {
        id: r.get(0)?,
        doc_key: r.get(1)?,
        ordinal: r.get(2)?,
        text: if text { Some(r.get(6)?) } else { None },
        text_hash: r.get(3)?,
        metadata: r.get(4)?,
        inherits: r.get(5)?,
    })
}

/// Adds the inherited metadata of the documents of `rows` (each once) in one read transaction.
fn with_documents(conn: &Connection, rows: Vec<ChunkRow>) -> Result<ChunkPage> {
    let mut st = conn.prepare_cached(INHERITED)?;
    let mut documents = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        if row.inherits && seen.insert(row.doc_key.as_str()) {
            // A document deleted since would leave its chunks deleted too (one transaction);
            // `{}` only guards a store edited by hand.
            let m: Option<String> = st.query_row(params![row.doc_key], |r| r.get(0)).optional()?;
            documents.push((row.doc_key.clone(), m.unwrap_or_else(|| "{}".to_string())));
        }
    }
    Ok(ChunkPage { rows, documents })
}

/// Runs `f` in one read transaction, so chunks and their documents' metadata agree (in the
/// caller's, when the connection is in one already).
fn snapshot<T>(conn: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if !conn.is_autocommit() {
        return f();
    }
    conn.execute_batch("BEGIN")?;
    let res = f();
    let _ = conn.execute_batch("COMMIT");
    res
}

pub fn get_chunks(conn: &Connection, ids: &[i64]) -> Result<ChunkPage> {
    snapshot(conn, || {
        let mut st = conn.prepare_cached(
            "SELECT id, doc_key, ordinal, text_hash, metadata, inherits, text FROM chunks WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for &id in ids {
            if !seen.insert(id) {
                continue;
            }
            if let Some(row) = st.query_row(params![id], |r| chunk_row(r, true)).optional()? {
                out.push(row);
            }
        }
        with_documents(conn, out)
    })
}

pub fn list_chunks(conn: &Connection, after_id: i64, limit: i64) -> Result<ChunkPage> {
    snapshot(conn, || {
        let mut st = conn.prepare_cached(
            "SELECT id, doc_key, ordinal, text_hash, metadata, inherits FROM chunks WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![after_id, limit], |r| chunk_row(r, false))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        with_documents(conn, rows)
    })
}

/// Every chunk's document and metadata for the catalog, in one read: documents in key order,
/// their chunks in ordinal order, each chunk's own metadata once per distinct value in its document.
pub struct CatalogDump {
    pub keys: Vec<String>,
    /// What a document's inheriting chunks inherit (`{}` when none inherits).
    pub inherited: Vec<String>,
    /// Document `d`'s chunks are `ids[starts[d]..starts[d + 1]]`.
    pub starts: Vec<u32>,
    pub ids: Vec<u32>,
    /// Chunk `i`'s metadata is `metas[meta_of[i]]` (over `inherited` when `meta_inherits`).
    pub meta_of: Vec<u32>,
    pub metas: Vec<String>,
    pub meta_inherits: Vec<bool>,
}

pub fn catalog_dump(conn: &Connection) -> Result<CatalogDump> {
    snapshot(conn, || {
        let mut st = conn.prepare_cached(
            "SELECT id, doc_key, metadata, inherits FROM chunks ORDER BY doc_key, ordinal",
        )?;
        let mut inherited_of = conn.prepare_cached(INHERITED)?;
        let mut out = CatalogDump {
            keys: Vec::new(),
            inherited: Vec::new(),
            starts: Vec::new(),
            ids: Vec::new(),
            meta_of: Vec::new(),
            metas: Vec::new(),
            meta_inherits: Vec::new(),
        };
        let mut distinct: HashMap<(bool, String), u32> = HashMap::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let key: String = r.get(1)?;
            let metadata: String = r.get(2)?;
            let inherits: bool = r.get::<_, i64>(3)? != 0;
            let id = u32::try_from(id).map_err(|_| Error(format!("chunk id {id} is beyond the catalog's range")))?;
            if out.keys.last() != Some(&key) {
                out.starts.push(out.ids.len() as u32);
                out.keys.push(key);
                out.inherited.push(String::new());
                distinct.clear();
            }
            let d = out.keys.len() - 1;
            if inherits && out.inherited[d].is_empty() {
                let m: Option<String> = inherited_of.query_row(params![out.keys[d]], |r| r.get(0)).optional()?;
                out.inherited[d] = m.unwrap_or_else(|| "{}".to_string());
            }
            let next = out.metas.len() as u32;
            let at = *distinct.entry((inherits, metadata)).or_insert_with_key(|(inh, m)| {
                out.metas.push(m.clone());
                out.meta_inherits.push(*inh);
                next
            });
            out.ids.push(id);
            out.meta_of.push(at);
        }
        out.starts.push(out.ids.len() as u32);
        for m in &mut out.inherited {
            if m.is_empty() {
                m.push_str("{}");
            }
        }
        Ok(out)
    })
}

pub struct DocumentRow {
    pub key: String,
    pub version: String,
    pub content_hash: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub metadata: String,
    pub chunk_count: i64,
    pub seen_at: Option<i64>,
    pub indexed_at: Option<i64>,
}

const DOC_COLS: &str =
    "key, version, content_hash, status, error, metadata, chunk_count, seen_at, indexed_at";

fn doc_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocumentRow> {
    Ok(DocumentRow {
        key: r.get(0)?,
        version: r.get(1)?,
        content_hash: r.get(2)?,
        status: r.get(3)?,
        error: r.get(4)?,
        metadata: r.get(5)?,
        chunk_count: r.get(6)?,
        seen_at: r.get(7)?,
        indexed_at: r.get(8)?,
    })
}

pub fn get_document(conn: &Connection, key: &str) -> Result<Option<DocumentRow>> {
    let mut st =
        conn.prepare_cached(&format!("SELECT {DOC_COLS} FROM documents WHERE key = ?1"))?;
    Ok(st.query_row(params![key], doc_row).optional()?)
}

pub fn list_documents(conn: &Connection) -> Result<Vec<DocumentRow>> {
    let mut st = conn.prepare_cached(&format!("SELECT {DOC_COLS} FROM documents ORDER BY key"))?;
    let rows = st.query_map([], doc_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub fn get_cursor(conn: &Connection, name: &str) -> Result<Option<String>> {
    let mut st = conn.prepare_cached("SELECT value FROM cursors WHERE name = ?1")?;
    Ok(st.query_row(params![name], |r| r.get(0)).optional()?)
}

pub struct Stats {
    pub documents: i64,
    pub pending: i64,
    pub indexed: i64,
    pub failed: i64,
    pub chunks: i64,
    pub last_seq: i64,
    pub last_modified: Option<f64>,
    pub last_indexed: Option<i64>,
}

pub fn stats(conn: &Connection) -> Result<Stats> {
    // One read transaction so the numbers agree with each other.
    snapshot(conn, || {
        let (documents, pending, indexed, failed) = conn.query_row(
            "SELECT COUNT(*),
                    COALESCE(SUM(status = 'pending'), 0),
                    COALESCE(SUM(status = 'indexed'), 0),
                    COALESCE(SUM(status = 'failed'), 0)
             FROM documents",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let chunks: i64 = conn.query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))?;
        let last_modified: Option<f64> = conn.query_row(
            "SELECT MAX(json_extract(metadata, '$.modified_at')) FROM documents
             WHERE status = 'indexed' AND json_type(metadata, '$.modified_at') IN ('integer', 'real')",
            [],
            |r| r.get(0),
        )?;
        let last_indexed: Option<i64> =
            conn.query_row("SELECT MAX(indexed_at) FROM documents", [], |r| r.get(0))?;
        Ok(Stats {
            documents,
            pending,
            indexed,
            failed,
            chunks,
            last_seq: last_seq(conn)?,
            last_modified,
            last_indexed,
        })
    })
}
