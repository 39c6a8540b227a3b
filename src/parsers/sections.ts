/** @module parsers/sections — cuts a stream of lines and headings into sections carrying their heading path. */

export interface Section {
  /** The heading path, outermost first: `["Install", "From source"]`; empty before the first heading. */
  headings: string[];
  /** The section's text, its own heading line(s) included. */
  text: string;
}

/**
 * Collects lines; every `heading()` closes the current section and opens a new one.
 *
 * A section that holds nothing but its heading is not emitted alone when the next heading is
 * one of its children: its lines open the child's section instead (`# Install` directly
 * followed by `## From source`), so no chunk is a lone heading while the path still names it.
 */
export class SectionBuilder {
  readonly #sections: Section[] = [];
  /** Open headings, outermost first. */
  readonly #stack: { level: number; title: string }[] = [];
  #lines: string[] = [];
  #level = 0;
  #headings: string[] = [];
  /** True while the open section holds only heading lines. */
  #bare = false;

  heading(level: number, title: string, lines: readonly string[]): void {
    const carry = this.#bare && level > this.#level ? this.#lines : null;
    if (!carry) this.#flush();
    while (this.#stack.length > 0 && this.#stack[this.#stack.length - 1]!.level >= level) this.#stack.pop();
    this.#stack.push({ level, title });
    this.#lines = carry ? [...carry, ...lines] : [...lines];
    this.#level = level;
    this.#headings = this.#stack.map((h) => h.title).filter((t) => t !== '');
    this.#bare = true;
  }

  line(line: string): void {
    this.#lines.push(line);
    if (this.#bare && line.trim() !== '') this.#bare = false;
  }

  finish(): Section[] {
    this.#flush();
    return this.#sections;
  }

  #flush(): void {
    const text = this.#lines.join('\n').trim();
    if (text !== '') this.#sections.push({ headings: this.#headings, text });
    this.#lines = [];
  }
}
