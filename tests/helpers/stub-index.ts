/** A `LiveIndexApi` stand-in for route tests: canned documents, real filters, and a record of every request. */
import { compileFilter } from '../../src/core/filter.js';
import type {
  DocumentChunk,
  DocumentInfo,
  Hit,
  IndexStatus,
  ListDocumentsRequest,
  LiveIndexApi,
  Metadata,
  RetrieveRequest,
  Statistics,
} from '../../src/core/types.js';

export interface StubIndex extends LiveIndexApi {
  /** Every request received, in order. */
  readonly calls: {
    retrieve: RetrieveRequest[];
    listDocuments: ListDocumentsRequest[];
    getDocument: string[];
  };
  ready: boolean;
  /** When set, every method throws it (to test error mapping). */
  failWith: unknown;
}

export const STUB_DOCUMENTS: Metadata[] = [
  { path: 'docs/guide.md', modified_at: 1700000100, seen_at: 1700000200 },
  { path: 'docs/api/reference.md', modified_at: 1700000300, seen_at: 1700000400 },
  { path: "reports/l'été 2024.pdf", modified_at: 1600000000, seen_at: 1700000500 },
];

export function createStubIndex(): StubIndex {
  const stub: StubIndex = {
    calls: { retrieve: [], listDocuments: [], getDocument: [] },
    ready: true,
    failWith: undefined,

    async retrieve(req) {
      stub.calls.retrieve.push(req);
      if (stub.failWith !== undefined) throw stub.failWith;
      const match = compileFilter({ metadataFilter: req.metadataFilter, filepathGlobpattern: req.filepathGlobpattern });
      const hits: Hit[] = STUB_DOCUMENTS.filter((m) => !match || match(m)).map((metadata, i) => ({
        text: `chunk of ${String(metadata.path)}`,
        metadata,
        dist: i * 0.1,
        scores: { bm25: 1 - i * 0.1, vector: 1 - i * 0.1, fused: 1 / (60 + i) },
      }));
      return hits.slice(0, req.k);
    },

    async listDocuments(req) {
      stub.calls.listDocuments.push(req);
      if (stub.failWith !== undefined) throw stub.failWith;
      const match = compileFilter({ metadataFilter: req.metadataFilter, filepathGlobpattern: req.filepathGlobpattern });
      return STUB_DOCUMENTS.filter((m) => !match || match(m)).map((m) =>
        req.returnStatus ? { ...m, _indexing_status: 'INDEXED' } : { ...m },
      );
    },

    async statistics(): Promise<Statistics> {
      if (stub.failWith !== undefined) throw stub.failWith;
      return { file_count: STUB_DOCUMENTS.length, last_modified: 1700000300, last_indexed: 1700000500 };
    },

    async status(): Promise<IndexStatus> {
      return {
        ready: stub.ready,
        synced: stub.ready,
        documents: { total: 3, pending: stub.ready ? 0 : 2, indexed: stub.ready ? 3 : 1, failed: 0 },
        chunks: 3,
        queue: { depth: stub.ready ? 0 : 2, inFlight: 0 },
        lastSeq: 7,
        model: { active: 'hashing:v2:384', building: null },
        sources: [{ id: 'fs:/stub', state: 'idle', error: null, last_sync_at: 1700000500, failures: 0 }],
      };
    },

    async getDocument(key): Promise<DocumentInfo | null> {
      stub.calls.getDocument.push(key);
      if (stub.failWith !== undefined) throw stub.failWith;
      const metadata = STUB_DOCUMENTS.find((m) => m.path === key);
      if (!metadata) return null;
      return { key, status: 'indexed', error: null, metadata, chunk_count: 1, indexed_at: 1700000500, seen_at: 1700000500 };
    },

    async listDocumentInfos(): Promise<DocumentInfo[]> {
      if (stub.failWith !== undefined) throw stub.failWith;
      return STUB_DOCUMENTS.map((metadata): DocumentInfo => {
        const key = String(metadata.path);
        return { key, status: 'indexed', error: null, metadata, chunk_count: 1, indexed_at: 1700000500, seen_at: 1700000500 };
      }).sort((a, b) => (a.key < b.key ? -1 : 1));
    },

    async getDocumentChunks(key): Promise<DocumentChunk[] | null> {
      if (stub.failWith !== undefined) throw stub.failWith;
      const metadata = STUB_DOCUMENTS.find((m) => m.path === key);
      return metadata ? [{ ordinal: 0, text: `chunk of ${key}`, metadata }] : null;
    },

    // Canned documents never change.
    onChange() {
      return () => {};
    },

    isReady() {
      return stub.ready;
    },
  };
  return stub;
}
