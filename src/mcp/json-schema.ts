/**
 * @module mcp/json-schema — the JSON Schema of a tool, derived from its zod schema and spelled
 * the portable way: one `type` per schema (nullable fields as `anyOf` with `null`), and free-form
 * values as `true`, so clients that map tool schemas onto a narrower dialect keep every field.
 */
import { z } from 'zod';

type Json = unknown;

/** Keywords that describe a field rather than constrain one branch of it. */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly']);

function portable(node: Json): Json {
  if (Array.isArray(node)) return node.map(portable);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(node)) {
    // `{}` accepts anything: say so with `true`, which every dialect reads the same way.
    if ((key === 'additionalProperties' || key === 'items') && isEmptySchema(value)) out[key] = true;
    else out[key] = portable(value);
  }
  if (!Array.isArray(out.type)) return out;
  const annotations: Record<string, Json> = {};
  const constraints: Record<string, Json> = {};
  for (const [key, value] of Object.entries(out)) {
    if (key === 'type') continue;
    (ANNOTATIONS.has(key) ? annotations : constraints)[key] = value;
  }
  return { ...annotations, anyOf: (out.type as string[]).map((t) => (t === 'null' ? { type: 'null' } : { type: t, ...constraints })) };
}

function isEmptySchema(value: Json): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0;
}

/** The JSON Schema (draft-07) of a tool's input or output, from the zod schema that validates it. */
export function toolJsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  return portable(z.toJSONSchema(schema, { io, target: 'draft-7' })) as Record<string, unknown>;
}
