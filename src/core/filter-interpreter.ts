/** @module core/filter-interpreter — a JMESPath interpreter that meters its own work: every node visited and every value a function produces is charged, and growth is checked before it is allocated. */
import { TreeInterpreter, TYPE_STRING, type compile } from '@jmespath-community/jmespath';
import type { JSONValue } from '@jmespath-community/jmespath';
import { limitError, type FilterBudget, type FilterLimits } from './filter-budget.js';
import type { Glob } from './glob.js';

/**
 * Work units, calibrated on a 2-core server so that one unit is at most about 6 ns of
 * evaluation (1–6 ns measured over globs, maps, filters, sorts, pads and trims): a node of
 * the expression visited, a function called (checking its arguments is most of that), a
 * character or an array item a function reads or produces, a (pattern character × path
 * character) step of the glob matcher, an element compared while sorting. A document's
 * evaluation stops at `limits.filter_max_cost` units (2,000,000 ≈ 10 ms), which keeps the
 * event loop free between documents; a request's at `limits.filter_max_request_cost`.
 */
export const COST = { visit: 8, call: 200, char: 1, item: 4, globStep: 4, sortStep: 40, trimChar: 4 } as const;

/** The work of one document's evaluation. */
export class Meter {
  cost = 0;
  constructor(
    readonly budget: FilterBudget,
    readonly field: string,
  ) {}

  get limits(): FilterLimits {
    return this.budget.limits;
  }

  charge(units: number): void {
    this.cost += units;
    if (this.cost > this.limits.filter_max_cost) {
      throw limitError(this.field, 'filter_max_cost', this.limits, `evaluating one document costs more than ${this.limits.filter_max_cost} work units`);
    }
    this.budget.spend(units);
  }

  /** Refuses a string of `length` characters before it is built. */
  string(length: number, what: string): void {
    if (length > this.limits.filter_max_string_chars) {
      throw limitError(this.field, 'filter_max_string_chars', this.limits, `${what} would make a string of ${length} characters`);
    }
    this.charge(length * COST.char);
  }

  /** Refuses an array of `items` elements before it is built. */
  array(items: number, what: string): void {
    if (items > this.limits.filter_max_array_items) {
      throw limitError(this.field, 'filter_max_array_items', this.limits, `${what} would make an array of ${items} items`);
    }
    this.charge(items * COST.item);
  }

  /** Charges what a function returned (strings and arrays by size). */
  produced(value: unknown, what: string): void {
    if (typeof value === 'string') this.string(value.length, what);
    else if (Array.isArray(value)) this.array(value.length, what);
    else if (value !== null && typeof value === 'object') this.array(Object.keys(value).length, what);
  }
}

/** A parsed filter, as the library's `compile` returns it. */
export type ExpressionNode = ReturnType<typeof compile>;

type Interpreter = typeof TreeInterpreter;
type FunctionEntry = Interpreter['runtime']['_functionTable'][string];
type FunctionTable = Record<string, FunctionEntry>;

/** The meter of the evaluation in progress, shared by an interpreter and the scoped copies `let` makes. */
interface MeterSlot {
  meter: Meter | null;
}

/** Fields the library keeps private and `withScope` has to carry over. */
interface ScopeInternals {
  _rootValue: JSONValue;
  _scope: { withScope(data: unknown): unknown };
}

const Base = TreeInterpreter.constructor as new () => Interpreter;

/** Counts occurrences of `needle` in `haystack`, stopping past `stop`, without building anything. */
function occurrences(haystack: string, needle: string, stop: number): number {
  if (needle === '') return haystack.length + 1;
  let n = 0;
  for (let at = haystack.indexOf(needle); at >= 0 && n <= stop; at = haystack.indexOf(needle, at + needle.length)) n++;
  return n;
}

const WHITESPACE = /[\s\x85]/;

/**
 * `trim`, `trim_left` and `trim_right` without the library's `(.*?)[chars]*$` regular
 * expressions, which backtrack quadratically on a long run of trimmable characters.
 */
function trimmer(left: boolean, right: boolean) {
  return ([subject, chars]: JSONValue[]): string => {
    const s = subject as string;
    const set = typeof chars === 'string' && chars !== '' ? new Set(chars) : null;
    const trimmable = (c: string) => (set ? set.has(c) : WHITESPACE.test(c));
    let from = 0;
    let to = s.length;
    if (left) while (from < to && trimmable(s[from]!)) from++;
    if (right) while (to > from && trimmable(s[to - 1]!)) to--;
    return s.slice(from, to);
  };
}

/** Checks, before a function runs, what it is about to build; the sizes it cannot know are charged after. */
function precheck(meter: Meter, name: string, args: JSONValue[]): void {
  const limits = meter.limits;
  switch (name) {
    case 'pad_left':
    case 'pad_right': {
      const width = args[1];
      if (typeof width === 'number') meter.string(width, `${name}() with width ${width}`);
      break;
    }
    case 'join': {
      const [sep, list] = args as [string, string[]];
      let length = Math.max(0, list.length - 1) * sep.length;
      for (const s of list) length += s.length;
      meter.string(length, 'join()');
      break;
    }
    case 'replace': {
      const [subject, old, by, count] = args as [string, string, string, number | undefined];
      if (typeof count === 'number') {
        // The library builds an array of `count` entries to loop over.
        meter.array(count, `replace() with count ${count}`);
        meter.charge(count * (subject.length + 1) * COST.char);
      }
      const stop = Math.ceil(limits.filter_max_string_chars / Math.max(1, by.length)) + 1;
      let n = occurrences(subject, old, stop);
      if (typeof count === 'number') n = Math.min(n, count);
      meter.string(subject.length + n * (by.length - old.length), 'replace()');
      break;
    }
    case 'split': {
      const [subject, sep] = args as [string, string];
      meter.array(occurrences(subject, sep, limits.filter_max_array_items + 1), 'split()');
      break;
    }
    case 'trim':
    case 'trim_left':
    case 'trim_right':
      if (typeof args[0] === 'string') meter.charge(args[0].length * COST.trimChar);
      break;
    case 'length':
    case 'reverse':
    case 'to_string':
    case 'lower':
    case 'upper':
    case 'contains':
    case 'starts_with':
    case 'ends_with':
    case 'find_first':
    case 'find_last':
      // Linear in their input: charged by its size, since they read all of it.
      if (typeof args[0] === 'string') meter.charge(args[0].length * COST.char);
      break;
    case 'sort':
    case 'sort_by':
    case 'group_by':
    case 'max_by':
    case 'min_by':
    case 'zip':
    case 'merge':
      for (const a of args) if (Array.isArray(a)) meter.charge(a.length * COST.sortStep * Math.max(1, Math.ceil(Math.log2(a.length + 1))));
      break;
  }
}

/** A metered JMESPath interpreter (with `globmatch`) and the function table its checks read. */
export interface MeteredInterpreter {
  /** The functions known to filters, for compile-time checks of names and arities. */
  readonly functions: FunctionTable;
  /** Evaluates `ast` over `value` with `meter` charged for the work. */
  search(ast: ExpressionNode, value: JSONValue, meter: Meter): JSONValue;
}

/**
 * Builds an interpreter for one compiled filter: its own function table (so that
 * registering `globmatch` and the metering wrappers touches no shared state of the
 * library), with every function charged and checked by the meter of the evaluation.
 */
export function createInterpreter(globOf: (pattern: string, meter: Meter) => Glob): MeteredInterpreter {
  const slot: MeterSlot = { meter: null };
  const meterOf = (): Meter => {
    if (!slot.meter) throw new Error('a filter evaluated outside a metered search');
    return slot.meter;
  };

  class Metered extends Base {
    override withScope(scope: Parameters<Interpreter['withScope']>[0]): Interpreter {
      // The library's withScope builds a plain interpreter, which would escape the meter.
      const child = new Metered();
      child.runtime._functionTable = this.runtime._functionTable;
      const self = this as unknown as ScopeInternals;
      const inner = child as unknown as ScopeInternals;
      inner._rootValue = self._rootValue;
      inner._scope = self._scope.withScope(scope) as ScopeInternals['_scope'];
      return child;
    }

    override visit(node: ExpressionNode, value: JSONValue | ExpressionNode): ReturnType<Interpreter['visit']> {
      const meter = meterOf();
      meter.charge(COST.visit);
      switch (node.type) {
        case 'Flatten': {
          // Flattening multiplies: count what it would build before building it.
          const original = this.visit(node.child, value);
          if (!Array.isArray(original)) return null;
          let items = 0;
          for (const x of original) items += Array.isArray(x) ? x.length : 1;
          meter.array(items, 'flattening ([])');
          return original.flat() as JSONValue;
        }
        case 'Slice': {
          if (typeof value === 'string') meter.charge(value.length * COST.char);
          break;
        }
        default:
          break;
      }
      return super.visit(node, value);
    }
  }

  const interpreter = new Metered();
  const runtime = interpreter.runtime;
  runtime.register('globmatch', (args) => {
    const meter = meterOf();
    const [pattern, path] = args as [string, string];
    const glob = globOf(pattern, meter);
    meter.charge(glob.cost(path) * COST.globStep);
    return glob.match(path);
  }, [{ types: [TYPE_STRING] }, { types: [TYPE_STRING] }]);
  const table = runtime._functionTable as FunctionTable;
  table.trim = { ...table.trim!, _func: trimmer(true, true) as FunctionEntry['_func'] };
  table.trim_left = { ...table.trim_left!, _func: trimmer(true, false) as FunctionEntry['_func'] };
  table.trim_right = { ...table.trim_right!, _func: trimmer(false, true) as FunctionEntry['_func'] };
  for (const [name, entry] of Object.entries(table)) {
    const inner = entry._func;
    table[name] = {
      ...entry,
      _func: ((args: JSONValue[]) => {
        const meter = meterOf();
        meter.charge(COST.call);
        precheck(meter, name, args);
        const out = inner.call(runtime, args) as JSONValue;
        meter.produced(out, `${name}()`);
        return out;
      }) as FunctionEntry['_func'],
    };
  }

  return {
    functions: table,
    search(ast, value, meter) {
      const previous = slot.meter;
      slot.meter = meter;
      try {
        return interpreter.search(ast, value);
      } finally {
        slot.meter = previous;
      }
    },
  };
}
