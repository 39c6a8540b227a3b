//! Housekeeping: pruning the embedding cache and the change log in short batches, and reading
//! the sequence a text index on disk claims (to tell a reset store from a fresh one).
//!
//! Every batch is one short write transaction on the writer connection, so commits wait at
//! most one batch; the caller loops over batches and the JS thread stays free in between.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::engine::Engine;
use crate::error::Result;
use crate::text::TextIndex;

/// Adds what pruning needs to an existing store; idempotent, independent of the schema version.
///
/// `embeddings.unused_since` (Unix ms): when a pass first saw the entry with no live chunk
/// (NULL while one uses it). `chunks_text_hash` makes "does a live chunk use this text" a
/// lookup instead of a scan. `journal_size_limit` cuts the WAL back after a checkpoint once a
/// large ingest has blown it up (SQLite's own checkpoints keep reusing it otherwise).
pub fn ensure_schema(conn: &Connection) -> Result<()> {
    let has_column: bool = conn
        .query_row(
            "SELECT 1 FROM pragma_table_info('embeddings') WHERE name = 'unused_since'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !has_column {
        conn.execute_batch("ALTER TABLE embeddings ADD COLUMN unused_since INTEGER")?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS chunks_text_hash ON chunks(text_hash);
         PRAGMA journal_size_limit = 16777216;",
    )?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Orders embedding lookups against cache deletions.
///
/// The pipeline looks cached vectors up on a reader, then commits chunks that rely on them
/// without sending the vectors again: deleting an entry between the two fails that commit, and
/// the pipeline sends it again with the vectors the lookup gave (which puts the entries back).
/// To keep that retry rare, a deletion batch runs only when no lookup found an entry a pass
/// had marked unused (the only entries a batch deletes) since the caller read `count`, and
/// holds `gate` exclusively while it commits, so such a lookup either counted before or sees
/// the deletion.
///
/// Lookups that miss, or find entries in use, do not count: a pipeline that never pauses looks
/// something up all the time, and counting every lookup kept the cache from ever being pruned
/// under continuous edits.
#[derive(Default)]
pub struct LookupGuard {
    marked_hits: AtomicU64,
    gate: RwLock<()>,
}

impl LookupGuard {
    /// Held by a lookup for its whole read.
    pub fn lookup(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by a lookup that found a marked entry, before it lets go of `lookup()`'s guard.
    pub fn found_marked(&self) {
        self.marked_hits.fetch_add(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> u64 {
        self.marked_hits.load(Ordering::SeqCst)
    }
}

pub struct EmbeddingPass<'a> {
    /// Models whose entries may be live (the serving one, one being built); the others' entries
    /// count as unused.
    pub keep_models: &'a [String],
    pub grace_ms: i64,
    /// Resume after this (model, text hash); None starts a pass.
    pub after: Option<(String, String)>,
    pub limit: i64,
    /// `LookupGuard::count` as the caller read it before the batch; None: mark, never delete.
    pub quiet_lookups: Option<u64>,
}

#[derive(Default)]
pub struct EmbeddingBatch {
    pub scanned: i64,
    /// Entries newly seen unused.
    pub marked: i64,
    /// Entries seen unused before that a chunk uses again.
    pub revived: i64,
    pub deleted: i64,
    /// Entries past their grace period left in place because a lookup found a marked entry.
    pub deferred: i64,
    /// Where the next batch starts; None when the pass is complete.
    pub next: Option<(String, String)>,
}

/// One batch of a pass over the embedding cache, in key order.
pub fn prune_embeddings(
    conn: &mut Connection,
    guard: &LookupGuard,
    pass: EmbeddingPass<'_>,
) -> Result<EmbeddingBatch> {
    let now = now_ms();
    let keep = json_strings(pass.keep_models);
    let (after_model, after_hash) = pass.after.clone().unwrap_or_default();
    let start = pass.after.is_some();
    // Held from before the transaction until after its commit (see `LookupGuard`).
    let _gate = guard.gate.write().unwrap_or_else(|e| e.into_inner());
    let may_delete = pass.quiet_lookups == Some(guard.count());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = EmbeddingBatch::default();
    {
        let mut rows = tx.prepare_cached(
            "SELECT e.model, e.text_hash, e.unused_since,
                    e.model IN (SELECT value FROM json_each(?1))
                      AND EXISTS (SELECT 1 FROM chunks c WHERE c.text_hash = e.text_hash)
             FROM embeddings e
             WHERE ?2 = 0 OR (e.model, e.text_hash) > (?3, ?4)
             ORDER BY e.model, e.text_hash
             LIMIT ?5",
        )?;
        let batch: Vec<(String, String, Option<i64>, bool)> = rows
            .query_map(
                params![keep, start as i64, after_model, after_hash, pass.limit],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect::<std::result::Result<_, _>>()?;
        let mut set = tx.prepare_cached(
            "UPDATE embeddings SET unused_since = ?3 WHERE model = ?1 AND text_hash = ?2",
        )?;
        let mut del =
            tx.prepare_cached("DELETE FROM embeddings WHERE model = ?1 AND text_hash = ?2")?;
        for (model, hash, unused_since, live) in &batch {
            match (live, unused_since) {
                (true, None) => {}
                (true, Some(_)) => {
                    set.execute(params![model, hash, Option::<i64>::None])?;
                    out.revived += 1;
                }
                (false, None) => {
                    set.execute(params![model, hash, now])?;
                    out.marked += 1;
                }
                (false, Some(since)) if now - since >= pass.grace_ms => {
                    if may_delete {
                        del.execute(params![model, hash])?;
                        out.deleted += 1;
                    } else {
                        out.deferred += 1;
                    }
                }
                (false, Some(_)) => {}
            }
        }
        out.scanned = batch.len() as i64;
        if batch.len() as i64 >= pass.limit {
            out.next = batch.last().map(|(m, h, _, _)| (m.clone(), h.clone()));
        }
    }
    tx.commit()?;
    Ok(out)
}

/// A JSON array of strings, for `json_each` (model keys are plain text, but quote them right).
fn json_strings(items: &[String]) -> String {
    let mut s = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for ch in item.chars() {
            match ch {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push(']');
    s
}

/// Deletes at most `limit` change-log entries at or below `up_to` (oldest first); returns how
/// many. The caller passes the lowest sequence every index has durably applied.
pub fn prune_change_log(conn: &mut Connection, up_to: i64, limit: i64) -> Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "DELETE FROM change_log WHERE seq IN (SELECT seq FROM change_log WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
        params![up_to, limit],
    )?;
    tx.commit()?;
    Ok(n as i64)
}

pub struct Counts {
    pub embeddings: i64,
    pub embeddings_unused: i64,
    pub change_log: i64,
    pub page_count: i64,
    pub freelist_count: i64,
    pub page_size: i64,
}

/// Row counts of the cache and the log, and how much of the file is free pages.
pub fn counts(conn: &Connection) -> Result<Counts> {
    conn.execute_batch("BEGIN")?;
    let res = (|| -> Result<Counts> {
        let has_column: bool = conn
            .query_row(
                "SELECT 1 FROM pragma_table_info('embeddings') WHERE name = 'unused_since'",
                [],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        let (embeddings, embeddings_unused) = if has_column {
            conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(unused_since IS NOT NULL), 0) FROM embeddings",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
        } else {
            (conn.query_row("SELECT COUNT(*) FROM embeddings", [], |r| r.get(0))?, 0)
        };
        let change_log = conn.query_row("SELECT COUNT(*) FROM change_log", [], |r| r.get(0))?;
        let page_count = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let freelist_count = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let page_size = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(Counts {
            embeddings,
            embeddings_unused,
            change_log,
            page_count,
            freelist_count,
            page_size,
        })
    })();
    let _ = conn.execute_batch("COMMIT");
    res
}

/// The change-log sequence the text index in `path` claims, None when there is no usable one.
pub fn text_index_seq(path: &Path) -> Option<i64> {
    if !path.join("meta.json").exists() {
        return None;
    }
    std::panic::catch_unwind(|| TextIndex::open_ro(path).and_then(|t| t.committed_seq()).ok())
        .ok()
        .flatten()
}

impl Engine {
    pub fn prune_embeddings(
        &self,
        guard: &LookupGuard,
        pass: EmbeddingPass<'_>,
    ) -> Result<EmbeddingBatch> {
        self.with_writer("pruneEmbeddings", |ws| {
            prune_embeddings(&mut ws.conn, guard, pass)
        })
    }

    /// Never beyond what the text index has committed, whatever the caller asks: a crash must
    /// find every entry the text index still has to replay.
    pub fn prune_change_log(&self, up_to: i64, limit: i64) -> Result<i64> {
        self.with_writer("pruneChangeLog", |ws| {
            let up_to = up_to.min(ws.tw.seq);
            prune_change_log(&mut ws.conn, up_to, limit)
        })
    }
}
