//! The engine: one data dir = a lock file, the store (SQLite) and the text index (tantivy).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

use crate::error::{Context, Error, Result};
use crate::store::{self, CommitOut, Op};
use crate::text::{self, Analyzer, TextIndex, TextWriter};

pub const STORE_FILE: &str = "store.sqlite";
pub const TEXT_DIR: &str = "text-index";
pub const LOCK_FILE: &str = "livedex.lock";

/// Test-only fault injection: `LIVEDEX_ENGINE_CRASH_POINT=after-store` aborts the process
/// right after a store commit, before the text index sees it (the crash the replay heals).
#[derive(Clone, Copy, PartialEq)]
enum CrashPoint {
    None,
    AfterStore,
}

pub(crate) struct WriterState {
    pub(crate) conn: Connection,
    pub(crate) tw: TextWriter,
}

pub struct Engine {
    pub dir: PathBuf,
    pub read_only: bool,
    /// Why the text index was rebuilt on open, if it was.
    pub rebuilt: Option<String>,
    store_path: PathBuf,
    closed: AtomicBool,
    writer: Mutex<Option<WriterState>>,
    readers: Mutex<Vec<Connection>>,
    /// While a held commit is unpublished: a read transaction opened before it, which every read
    /// goes through, so reads see the store as it was until `publish`.
    pinned: Mutex<Option<Connection>>,
    text: TextIndex,
    text_seq: AtomicI64,
    lock: Mutex<Option<File>>,
    crash_point: CrashPoint,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is turned into a JS error by the caller; the protected
    // state stays consistent (SQLite transactions roll back on drop), so ignore poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn acquire_dir_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(Error(format!(
                "data dir {} is in use by another livedex process{who}: only one writer may open it (stop that server, or point --data-dir elsewhere; `livedex query` and `livedex status` work beside it)",
                dir.display()
            )));
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error(format!("cannot lock {}: {e}", path.display())));
        }
    }
    // Record who holds it, for the message above (advisory only: the lock is the flock).
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}

impl Engine {
    pub fn open(dir: &str, read_only: bool, analyzer: &Analyzer) -> Result<Engine> {
        if dir.is_empty() {
            return Err(Error::msg("data dir must not be empty"));
        }
        let dir_path = PathBuf::from(dir);
        let store_path = dir_path.join(STORE_FILE);
        let text_path = dir_path.join(TEXT_DIR);
        let crash_point = match std::env::var("LIVEDEX_ENGINE_CRASH_POINT").as_deref() {
            Ok("after-store") => CrashPoint::AfterStore,
            _ => CrashPoint::None,
        };
        if read_only {
            if !store_path.exists() {
                return Err(Error(format!(
                    "no livedex data in {} ({STORE_FILE} is missing); open it read-write first",
                    dir_path.display()
                )));
            }
            let conn = store::open_ro(&store_path)?;
            store::check_schema(&conn).context(|| format!("store {}", store_path.display()))?;
            let text = TextIndex::open_ro(&text_path)?;
            let seq = text.committed_seq()?;
            return Ok(Engine {
                dir: dir_path,
                read_only,
                rebuilt: None,
                store_path,
                closed: AtomicBool::new(false),
                writer: Mutex::new(None),
                readers: Mutex::new(vec![conn]),
                pinned: Mutex::new(None),
                text,
                text_seq: AtomicI64::new(seq),
                lock: Mutex::new(None),
                crash_point,
            });
        }
        std::fs::create_dir_all(&dir_path)
            .context(|| format!("cannot create the data dir {}", dir_path.display()))?;
        let lock_file = acquire_dir_lock(&dir_path)?;
        let conn = store::open_rw(&store_path)?;
        crate::housekeeping::ensure_schema(&conn)
            .context(|| format!("store {}", store_path.display()))?;
        let (text, tw, rebuilt) = text::open_rw(&text_path, &conn, analyzer)?;
        let seq = tw.seq;
        Ok(Engine {
            dir: dir_path,
            read_only,
            rebuilt,
            store_path,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(WriterState { conn, tw })),
            readers: Mutex::new(Vec::new()),
            pinned: Mutex::new(None),
            text,
            text_seq: AtomicI64::new(seq),
            lock: Mutex::new(Some(lock_file)),
            crash_point,
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error(format!(
                "engine for {} is closed",
                self.dir.display()
            )));
        }
        Ok(())
    }

    pub(crate) fn with_writer<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut WriterState) -> Result<T>,
    ) -> Result<T> {
        self.check_open()?;
        if self.read_only {
            return Err(Error(format!(
                "{what} is not allowed: the engine for {} was opened readOnly",
                self.dir.display()
            )));
        }
        let mut g = lock(&self.writer);
        match g.as_mut() {
            Some(ws) => f(ws),
            None => Err(Error(format!(
                "engine for {} is closed",
                self.dir.display()
            ))),
        }
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.check_open()?;
        {
            let pinned = lock(&self.pinned);
            if let Some(conn) = pinned.as_ref() {
                return f(conn);
            }
        }
        let conn = lock(&self.readers).pop();
        let conn = match conn {
            Some(c) => c,
            None => store::open_ro(&self.store_path)?,
        };
        let res = f(&conn);
        if !self.closed.load(Ordering::Acquire) {
            lock(&self.readers).push(conn);
        }
        res
    }

    /// Commits a batch to the store (one transaction), then applies it to the text index.
    /// The second element is the text-index error, if applying failed: the batch is durable
    /// in the store and the next commit (or the next open) applies it again.
    ///
    /// `hold`: reads and searches keep seeing the store and the text index as they were before
    /// this commit until `publish` (a huge document commits for seconds while queries go on,
    /// then every view switches at once). When the commit fails, nothing is held.
    pub fn commit(
        &self,
        model: &str,
        ops: Vec<Op>,
        hold: bool,
    ) -> Result<(CommitOut, Option<String>)> {
        let (out, text_err, seq) = self.with_writer("commit", |ws| {
            // Before the pin: a failed checkpoint costs only WAL size, never the commit.
            let _ = store::checkpoint_wal(&ws.conn, &self.store_path);
            if hold {
                self.pin()?;
            }
            let out = match store::commit(&mut ws.conn, model, ops) {
                Ok(out) => out,
                Err(e) => {
                    if hold {
                        self.unpin();
                    }
                    return Err(e);
                }
            };
            if self.crash_point == CrashPoint::AfterStore && out.wrote_log {
                std::process::abort();
            }
            // Nothing held: searches see the commit at once (unless another commit holds them).
            let reload = lock(&self.pinned).is_none();
            let text_err = self
                .text
                .apply_then(&ws.conn, &mut ws.tw, reload)
                .err()
                .map(|e| e.0);
            Ok((out, text_err, ws.tw.seq))
        })?;
        self.text_seq.store(seq, Ordering::Release);
        Ok((out, text_err))
    }

    /// Opens the read transaction reads go through until `publish` (kept if one is open).
    fn pin(&self) -> Result<()> {
        let mut pinned = lock(&self.pinned);
        if pinned.is_some() {
            return Ok(());
        }
        let conn = match lock(&self.readers).pop() {
            Some(c) => c,
            None => store::open_ro(&self.store_path)?,
        };
        // A WAL read transaction takes its snapshot at its first read.
        conn.execute_batch("BEGIN")?;
        conn.query_row("SELECT COUNT(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
        *pinned = Some(conn);
        Ok(())
    }

    fn unpin(&self) {
        if let Some(conn) = lock(&self.pinned).take() {
            if conn.execute_batch("COMMIT").is_ok() && !self.closed.load(Ordering::Acquire) {
                lock(&self.readers).push(conn);
            }
        }
    }

    /// Shows what held commits wrote: searches move to the last text-index commit and reads to
    /// the store as it is now. A no-op when nothing is held.
    pub fn publish(&self) -> Result<()> {
        self.check_open()?;
        let held = lock(&self.pinned).is_some();
        if held {
            self.unpin();
            self.text.reader.reload()?;
        }
        Ok(())
    }

    pub fn put_embeddings(&self, model: &str, entries: &[(String, Vec<f32>)]) -> Result<()> {
        self.with_writer("putEmbeddings", |ws| store::put_embeddings(&mut ws.conn, model, entries))
    }

    pub fn set_cursor(&self, name: &str, value: &str) -> Result<()> {
        self.with_writer("setCursor", |ws| store::set_cursor(&ws.conn, name, value))
    }

    pub fn search(
        &self,
        query: &str,
        k: usize,
        allowed: Option<&[i64]>,
    ) -> Result<Vec<(i64, f32)>> {
        self.check_open()?;
        self.text.search(query, k, allowed, self.read_only)
    }

    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.with_reader(f)
    }

    pub fn text_index_seq(&self) -> Result<i64> {
        self.check_open()?;
        if self.read_only {
            self.text.committed_seq()
        } else {
            Ok(self.text_seq.load(Ordering::Acquire))
        }
    }

    /// Commits nothing pending (every commit is already durable), waits for background
    /// merges, closes the store and releases the dir lock. A second close is a no-op.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let ws = lock(&self.writer).take();
        let mut result = Ok(());
        if let Some(ws) = ws {
            if let Err(e) = ws.tw.writer.wait_merging_threads() {
                result = Err(Error(format!(
                    "text index: waiting for merges on close: {e}"
                )));
            }
            if let Err((_, e)) = ws.conn.close() {
                result = Err(Error::from(e));
            }
        }
        drop(lock(&self.pinned).take());
        lock(&self.readers).clear();
        drop(lock(&self.lock).take());
        result
    }
}
