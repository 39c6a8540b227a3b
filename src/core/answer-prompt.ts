/** @module core/answer-prompt — the pieces of an answer prompt: numbered context blocks, the template, citations read back. */
import type { ChatTool, Hit, Metadata } from './types.js';

/** Answers from the numbered context and cites it; `{context}` and `{question}` are filled in. */
export const DEFAULT_PROMPT_TEMPLATE = [
  'Answer the question using only the numbered context below.',
  'Cite the context you use by its number in square brackets after each fact, like [1] or [2][3].',
  '',
  'Context:',
  '{context}',
  '',
  'Question: {question}',
].join('\n');

export const DEFAULT_SYSTEM_PROMPT =
  'You answer questions from documents. Be concise and factual, and never use knowledge that is not in the context.';

export const DEFAULT_SUMMARIZE_PROMPT = 'Summarize the following texts in a few sentences. Keep names, numbers and dates.';

/** The tool a model calls, instead of answering, when the context does not hold the answer. */
export const NO_ANSWER_TOOL: ChatTool = {
  name: 'no_answer',
  description: 'Call this, without writing any text, when the numbered context does not contain the answer to the question.',
  parameters: {
    type: 'object',
    properties: { reason: { type: 'string', description: 'What is missing from the context.' } },
    required: [],
  },
};

/** How the model is told to signal "not in the context", by the structured signal in use. */
export const SIGNAL_INSTRUCTIONS = {
  tool: 'If the context does not contain the answer, call the no_answer tool instead of answering.',
  json:
    'Reply with one JSON object and nothing else: {"answer": "<the answer, with its [n] citations>"}; ' +
    'if the context does not contain the answer, reply {"answer": null}.',
} as const;

/** The `[placeholder]`s a prompt template must contain. */
export const TEMPLATE_PLACEHOLDERS = ['{context}', '{question}'] as const;

/** Fills `{context}` and `{question}` (every occurrence; other braces are left alone). */
export function renderTemplate(template: string, values: { context: string; question: string }): string {
  return template.replace(/\{(context|question)\}/g, (_, name: 'context' | 'question') => values[name]);
}

/** Where a chunk comes from, as a reader would cite it: path, page, section. */
export function describeSource(metadata: Metadata): string {
  const parts: string[] = [];
  const path = metadata.path ?? metadata.url ?? metadata.key;
  if (typeof path === 'string' && path) parts.push(path);
  const page = metadata.page ?? metadata.page_number;
  if (typeof page === 'number' || (typeof page === 'string' && page)) parts.push(`page ${page}`);
  const headings = metadata.headings;
  if (Array.isArray(headings) && headings.length > 0) parts.push(`section "${headings.map(String).join(' › ')}"`);
  return parts.join(', ');
}

/** The context as numbered blocks: `[n] source` on one line, the chunk text below. */
export function formatContext(hits: readonly Hit[]): string {
  return hits
    .map((hit, i) => {
      const source = describeSource(hit.metadata);
      return `[${i + 1}]${source ? ` ${source}` : ''}\n${hit.text.trim()}`;
    })
    .join('\n\n');
}

/**
 * The citation numbers an answer uses, in order of first use: `[2]`, `[1, 3]`, `[1][2]`;
 * numbers outside 1..`count` (a model inventing sources) are dropped.
 */
export function parseCitations(text: string, count: number): number[] {
  const seen = new Set<number>();
  for (const m of text.matchAll(/\[(\s*\d+(?:\s*[,;]\s*\d+)*\s*)\]/g)) {
    for (const n of m[1]!.split(/[,;]/).map((s) => Number(s.trim()))) {
      if (Number.isInteger(n) && n >= 1 && n <= count) seen.add(n);
    }
  }
  return [...seen];
}

/**
 * Reads a JSON-mode answer `{"answer": string | null}`: the answer text, or null for "not in
 * the context". Text that is not such an object is taken as the answer itself (a model that
 * ignored JSON mode still answered).
 */
export function readJsonAnswer(text: string): { answer: string | null; wellFormed: boolean } {
  const trimmed = text.trim().replace(/^```(?:json)?\s*|\s*```$/g, '');
  try {
    const value = JSON.parse(trimmed) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value) && 'answer' in value) {
      const answer = (value as { answer: unknown }).answer;
      if (answer === null || answer === '') return { answer: null, wellFormed: true };
      if (typeof answer === 'string') return { answer, wellFormed: true };
    }
  } catch {
    // not JSON: fall through
  }
  return { answer: text, wellFormed: false };
}
