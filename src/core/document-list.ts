/** @module core/document-list — the documents an index knows, with their indexing status: stored ones and those still in the pipeline. */
import type { DocumentRow, Engine } from '../engine/types.js';
import type { LivedexConfig } from './config.js';
import { compileFilter, filterBudget } from './filter.js';
import { filterLimits } from './filter-budget.js';
import type { Pipeline } from './pipeline.js';
import type { DocumentInfo, ListDocumentsRequest, Metadata } from './types.js';

const INDEXING_STATUS = { indexed: 'INDEXED', pending: 'INGESTED', failed: 'FAILED' } as const;

/** Each document's metadata, filtered as asked, with `_indexing_status` (and why it failed or waits) when asked. */
export async function listDocuments(deps: { engine: Engine; pipeline: Pipeline; config: LivedexConfig }, req: ListDocumentsRequest): Promise<Metadata[]> {
  const { engine, pipeline, config } = deps;
  const filter = { metadataFilter: req.metadataFilter, filepathGlobpattern: req.filepathGlobpattern, limits: filterLimits(config.limits) };
  const predicate = compileFilter(filter);
  const budget = predicate ? filterBudget(filter) : null;
  const accepts = (m: Metadata) => !predicate || !budget || budget.test(predicate, m);
  const rows = await engine.listDocuments();
  const out: Metadata[] = [];
  const known = new Set<string>();
  for (const row of rows) {
    known.add(row.key);
    // A document only seen so far (no version processed yet) is still being ingested.
    const status = row.status === 'pending' || row.version === '' ? 'pending' : row.status;
    // In slices: a long listing under an expensive filter lets other requests in between.
    const pause = budget?.breathe();
    if (pause) await pause;
    if (!accepts(row.metadata)) continue;
    // A change the data directory refused (full, read-only) is pending, with why.
    const held = pipeline.heldError(row.key);
    out.push(req.returnStatus ? (held ? withStatus(row.metadata, 'pending', held) : withStatus(row.metadata, status, row.error)) : row.metadata);
  }
  for (const doc of pipeline.pendingDocuments()) {
    if (known.has(doc.key) || !accepts(doc.metadata)) continue;
    out.push(req.returnStatus ? withStatus(doc.metadata, 'pending', pipeline.heldError(doc.key)) : doc.metadata);
  }
  return out;
}

function withStatus(metadata: Metadata, status: keyof typeof INDEXING_STATUS, error: string | null): Metadata {
  // A pending document may carry why it is held back (an unreachable model, retried later).
  const showError = status === 'failed' || (status === 'pending' && error);
  return { ...metadata, _indexing_status: INDEXING_STATUS[status], ...(showError ? { _indexing_error: error } : {}) };
}

/** A stored document as the API shows it. */
export function documentInfo(row: DocumentRow): DocumentInfo {
  return {
    key: row.key,
    status: row.status,
    error: row.error,
    metadata: row.metadata,
    chunk_count: row.chunkCount,
    indexed_at: row.indexedAt,
    seen_at: row.seenAt,
  };
}
