//! One query, one call: BM25 under the filter, fusion with the vector leg the caller searched,
//! and the hits' rows (text, metadata, the document's `indexed_at`), all in one task on the
//! thread pool. The fusion is the only one livedex has (`fuse` exposes it to TypeScript).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rusqlite::{params, OptionalExtension};

use crate::error::Result as EngineResult;
use crate::{job, Job, NativeDocumentMetadata, NativeEngine};

/// How the legs combine: `mode` is `hybrid`, `bm25` or `vector`; `fusion` is `rrf` or `convex`.
#[napi(object)]
#[derive(Clone)]
pub struct NativeFusionPlan {
    pub mode: String,
    pub fusion: String,
    /// Vector weight of convex fusion.
    pub alpha: f64,
    /// The k of reciprocal rank fusion.
    pub rrf_k: f64,
    /// Hits wanted after fusion.
    pub k: u32,
}

#[napi(object)]
pub struct NativeFusedHit {
    pub id: i64,
    /// Lower is better; 0 is a chunk first in every leg (or identical to the query).
    pub dist: f64,
    pub fused: f64,
    pub bm25: Option<f64>,
    pub vector: Option<f64>,
}

#[napi(object)]
pub struct NativeRetrieveRequest {
    pub query: String,
    /// Hits taken from the BM25 leg before fusion.
    pub candidates: u32,
    /// Bit `id` set for every chunk the filter accepts (bit `id % 32` of word `id / 32`); absent: all.
    pub allowed: Option<Uint32Array>,
    /// The vector leg, best first: ids and cosine similarities.
    pub vector_ids: Vec<i64>,
    pub vector_scores: Vec<f64>,
    /// When set (with `allowed`), the vector leg is searched here instead: exactly, over the
    /// stored embeddings (`exact_model`'s) of the allowed chunks; `vector_*` are then ignored.
    pub exact_vector: Option<Float32Array>,
    pub exact_model: Option<String>,
    pub plan: NativeFusionPlan,
}

#[napi(object)]
pub struct NativeRetrievedHit {
    pub id: i64,
    pub dist: f64,
    pub fused: f64,
    pub bm25: Option<f64>,
    pub vector: Option<f64>,
    pub doc_key: String,
    pub ordinal: i64,
    pub text: String,
    /// JSON: the chunk's own keys when `inherits`, else its complete metadata.
    pub metadata: String,
    pub inherits: bool,
    /// When the hit's document was last indexed (Unix seconds).
    pub indexed_at: Option<i64>,
}

#[napi(object)]
pub struct NativeRetrieved {
    pub hits: Vec<NativeRetrievedHit>,
    /// The metadata of each document a hit inherits from, once.
    pub documents: Vec<NativeDocumentMetadata>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: i64,
    pub dist: f64,
    pub fused: f64,
    pub bm25: Option<f64>,
    pub vector: Option<f64>,
}

fn by_fused_then_id(a: &Fused, b: &Fused) -> std::cmp::Ordering {
    b.fused
        .partial_cmp(&a.fused)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(a.id.cmp(&b.id))
}

/// Entries by id in first-seen order (the legs are short: a linear index is enough).
fn entry<'a>(hits: &'a mut Vec<Fused>, at: &mut std::collections::HashMap<i64, usize>, id: i64) -> &'a mut Fused {
    let i = *at.entry(id).or_insert_with(|| {
        hits.push(Fused { id, dist: 0.0, fused: 0.0, bm25: None, vector: None });
        hits.len() - 1
    });
    &mut hits[i]
}

/// Reciprocal rank fusion: Σ 1/(rrf_k + rank) over the legs a chunk is in; `dist` is
/// 1 − fused/best, best being the score of a chunk first in both legs.
pub fn fuse_rrf(bm25: &[(i64, f64)], vector: &[(i64, f64)], k: usize, rrf_k: f64) -> Vec<Fused> {
    let mut hits = Vec::with_capacity(bm25.len() + vector.len());
    let mut at = std::collections::HashMap::new();
    for (rank, &(id, score)) in bm25.iter().enumerate() {
        let e = entry(&mut hits, &mut at, id);
        e.fused += 1.0 / (rrf_k + rank as f64 + 1.0);
        e.bm25 = Some(score);
    }
    for (rank, &(id, score)) in vector.iter().enumerate() {
        let e = entry(&mut hits, &mut at, id);
        e.fused += 1.0 / (rrf_k + rank as f64 + 1.0);
        e.vector = Some(score);
    }
    let best = 2.0 / (rrf_k + 1.0);
    hits.sort_by(by_fused_then_id);
    hits.truncate(k);
    for h in &mut hits {
        h.dist = (1.0 - h.fused / best).max(0.0);
    }
    hits
}

/// Convex combination: alpha · cosine (clamped to [0, 1]) + (1 − alpha) · BM25/max(BM25);
/// a chunk missing from a leg scores 0 there.
pub fn fuse_convex(bm25: &[(i64, f64)], vector: &[(i64, f64)], k: usize, alpha: f64) -> Vec<Fused> {
    let max_bm25 = bm25.iter().fold(0.0_f64, |m, h| m.max(h.1));
    let mut hits = Vec::with_capacity(bm25.len() + vector.len());
    let mut at = std::collections::HashMap::new();
    for &(id, score) in bm25 {
        let e = entry(&mut hits, &mut at, id);
        e.fused = (1.0 - alpha) * if max_bm25 > 0.0 { score / max_bm25 } else { 0.0 };
        e.bm25 = Some(score);
    }
    for &(id, score) in vector {
        let e = entry(&mut hits, &mut at, id);
        e.fused += alpha * score.max(0.0).min(1.0);
        e.vector = Some(score);
    }
    hits.sort_by(by_fused_then_id);
    hits.truncate(k);
    for h in &mut hits {
        h.dist = (1.0 - h.fused).max(0.0);
    }
    hits
}

/// One leg as the ranking: BM25 keeps Pathway's `dist = −score`; vectors use cosine distance.
pub fn single_leg(leg: &[(i64, f64)], bm25: bool, k: usize) -> Vec<Fused> {
    leg.iter()
        .take(k)
        .map(|&(id, score)| Fused {
            id,
            fused: score,
            dist: if bm25 { -score } else { (1.0 - score).max(0.0) },
            bm25: if bm25 { Some(score) } else { None },
            vector: if bm25 { None } else { Some(score) },
        })
        .collect()
}

pub fn fuse(plan: &NativeFusionPlan, bm25: &[(i64, f64)], vector: &[(i64, f64)]) -> Vec<Fused> {
    let k = plan.k as usize;
    match (plan.mode.as_str(), plan.fusion.as_str()) {
        ("bm25", _) => single_leg(bm25, true, k),
        ("vector", _) => single_leg(vector, false, k),
        (_, "convex") => fuse_convex(bm25, vector, k, plan.alpha),
        _ => fuse_rrf(bm25, vector, k, plan.rrf_k),
    }
}

fn leg(ids: &[i64], scores: &[f64]) -> Vec<(i64, f64)> {
    ids.iter().copied().zip(scores.iter().copied()).collect()
}

/// The ids whose bits are set.
pub fn ids_of(bits: &[u32]) -> Vec<i64> {
    let mut out = Vec::new();
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            let b = word.trailing_zeros();
            out.push((w as i64) * 32 + b as i64);
            word &= word - 1;
        }
    }
    out
}

/// Below this cosine distance a chunk is the query itself (float32 rounding of 1 − 1), as in the vector index.
const SAME: f64 = 1e-6;

/// The `k` chunks of `ids` most similar (cosine) to `query`, best first, ties by id: an exact
/// scan of their stored embeddings, cheaper than a graph search that walks past every rejected
/// node when a filter keeps few chunks. A chunk without an embedding of `model` is left out.
pub fn exact_vector_leg(
    conn: &rusqlite::Connection,
    model: &str,
    query: &[f32],
    ids: &[i64],
    k: usize,
) -> EngineResult<Vec<(i64, f64)>> {
    let qn = query.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
    if k == 0 || qn == 0.0 {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare_cached(
        "SELECT e.vector FROM chunks c JOIN embeddings e ON e.model = ?1 AND e.text_hash = c.text_hash WHERE c.id = ?2",
    )?;
    let mut scored: Vec<(i64, f64)> = Vec::with_capacity(ids.len());
    for &id in ids {
        let blob: Option<Vec<u8>> = st.query_row(params![model, id], |r| r.get(0)).optional()?;
        let Some(blob) = blob else { continue };
        if blob.len() != query.len() * 4 {
            continue; // another dimension: not a vector of this model's index
        }
        let (mut dot, mut norm) = (0.0f64, 0.0f64);
        for (i, c) in blob.chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
            dot += v * query[i] as f64;
            norm += v * v;
        }
        if norm == 0.0 {
            continue;
        }
        let cos = dot / (norm.sqrt() * qn);
        scored.push((id, if 1.0 - cos < SAME { 1.0 } else { cos }));
    }
    scored.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    Ok(scored)
}

fn to_napi(h: Fused) -> NativeFusedHit {
    NativeFusedHit { id: h.id, dist: h.dist, fused: h.fused, bm25: h.bm25, vector: h.vector }
}

/// Fuses two legs (`bm25_*`, `vector_*`: ids and scores, best first) the way a query does.
#[napi(catch_unwind)]
pub fn fuse_legs(
    bm25_ids: Vec<i64>,
    bm25_scores: Vec<f64>,
    vector_ids: Vec<i64>,
    vector_scores: Vec<f64>,
    plan: NativeFusionPlan,
) -> Vec<NativeFusedHit> {
    fuse(&plan, &leg(&bm25_ids, &bm25_scores), &leg(&vector_ids, &vector_scores))
        .into_iter()
        .map(to_napi)
        .collect()
}

/// Rows of `fused` (in its order) with their documents' `indexed_at`, in one read transaction.
fn hit_rows(conn: &rusqlite::Connection, fused: Vec<Fused>) -> EngineResult<NativeRetrieved> {
    let ids: Vec<i64> = fused.iter().map(|h| h.id).collect();
    let began = conn.is_autocommit();
    if began {
        conn.execute_batch("BEGIN")?;
    }
    let res = (|| {
        let page = crate::store::get_chunks(conn, &ids)?;
        let mut st = conn.prepare_cached("SELECT indexed_at FROM documents WHERE key = ?1")?;
        let mut indexed = std::collections::HashMap::new();
        let mut rows: std::collections::HashMap<i64, crate::store::ChunkRow> =
            page.rows.into_iter().map(|r| (r.id, r)).collect();
        let mut hits = Vec::with_capacity(fused.len());
        for h in fused {
            // Deleted since the searches ran: the store is the truth, a deleted chunk never answers.
            let Some(row) = rows.remove(&h.id) else { continue };
            let at = match indexed.get(&row.doc_key) {
                Some(v) => *v,
                None => {
                    let v: Option<i64> = st.query_row(params![row.doc_key], |r| r.get::<_, Option<i64>>(0)).optional()?.flatten();
                    indexed.insert(row.doc_key.clone(), v);
                    v
                }
            };
            hits.push(NativeRetrievedHit {
                id: h.id,
                dist: h.dist,
                fused: h.fused,
                bm25: h.bm25,
                vector: h.vector,
                doc_key: row.doc_key,
                ordinal: row.ordinal,
                text: row.text.unwrap_or_default(),
                metadata: row.metadata,
                inherits: row.inherits,
                indexed_at: at,
            });
        }
        let documents = page
            .documents
            .into_iter()
            .map(|(key, metadata)| NativeDocumentMetadata { key, metadata })
            .collect();
        Ok(NativeRetrieved { hits, documents })
    })();
    if began {
        let _ = conn.execute_batch("COMMIT");
    }
    res
}

#[napi]
impl NativeEngine {
    /// BM25 (under `allowed`), fusion with the given vector leg, and the fused hits' rows.
    #[napi(catch_unwind)]
    pub fn retrieve(&self, req: NativeRetrieveRequest) -> AsyncTask<Job<NativeRetrieved>> {
        let inner = self.inner.clone();
        let allowed: Option<Vec<u32>> = req.allowed.map(|a| a.to_vec());
        let vector = leg(&req.vector_ids, &req.vector_scores);
        let exact = match (req.exact_vector, req.exact_model) {
            (Some(v), Some(m)) if allowed.is_some() => Some((v.to_vec(), m)),
            _ => None,
        };
        let (query, candidates, plan) = (req.query, req.candidates as usize, req.plan);
        job(move || {
            let ids = allowed.as_deref().map(ids_of);
            let bm25: Vec<(i64, f64)> = if plan.mode == "vector" || candidates == 0 {
                Vec::new()
            } else {
                match ids {
                    Some(ref ids) if ids.is_empty() => Vec::new(),
                    _ => inner
                        .search(&query, candidates, ids.as_deref())?
                        .into_iter()
                        .map(|(id, s)| (id, s as f64))
                        .collect(),
                }
            };
            inner.read(|c| {
                let vector = match (&exact, &ids) {
                    (Some((q, model)), Some(ids)) if plan.mode != "bm25" => exact_vector_leg(c, model, q, ids, candidates)?,
                    _ => vector,
                };
                let fused = fuse(&plan, &bm25, &vector);
                if fused.is_empty() {
                    return Ok(NativeRetrieved { hits: Vec::new(), documents: Vec::new() });
                }
                hit_rows(c, fused)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_ranks_a_chunk_in_both_legs_first_with_dist_zero() {
        let bm25 = [(1, 12.0), (2, 6.0), (3, 1.0)];
        let vector = [(1, 0.9), (4, 0.8), (2, 0.5)];
        let fused = fuse_rrf(&bm25, &vector, 10, 60.0);
        assert_eq!(fused.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1, 2, 4, 3]);
        assert_eq!(fused[0].dist, 0.0);
    }

    #[test]
    fn bits_decode_to_ids() {
        assert_eq!(ids_of(&[0b1010, 0, 1]), vec![1, 3, 64]);
    }
}
