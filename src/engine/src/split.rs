//! Token splitting: chunks of at most `max_tokens` cl100k tokens, cut between paragraphs,
//! sentences, lines or words — the same boundaries as `src/splitters/token.ts`, piece for piece.
//!
//! Texts are UTF-16 code units, as JavaScript holds them, and every offset is a code-unit offset:
//! the JS splitter's rules (a long piece counted in 64-unit slices, never half a surrogate pair)
//! are rules about code units. Tokens are counted the way js-tiktoken counts them: its cl100k
//! pre-tokenizer pattern (with JavaScript's `\s`, which holds U+FEFF and not U+0085), then
//! byte-pair merges over the ranks that `tiktoken-rs` ships inside the crate.

use std::sync::OnceLock;

use fancy_regex::Regex;
use rustc_hash::FxHashMap;

/// Pieces up to this many code units are counted whole (and cached); longer ones in slices.
const MAX_EXACT_PIECE: usize = 64;
const MAX_CACHE_ENTRIES: usize = 200_000;

/// JavaScript's `\s`, as a character-class body.
const WS: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

/// js-tiktoken's cl100k `pat_str`, with `\s`/`\S` spelled as JavaScript reads them.
fn cl100k_pattern() -> String {
    let contractions = "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)";
    format!(
        r"{contractions}|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{{1,3}}| ?[^{WS}\p{{L}}\p{{N}}]+[\r\n]*|[{WS}]*[\r\n]+|[{WS}]+(?![^{WS}])|[{WS}]+"
    )
}

/// The cl100k_base encoding: its pre-tokenizer and its merge ranks.
pub struct Cl100k {
    ranks: FxHashMap<Vec<u8>, u32>,
    pieces: Regex,
}

static CL100K: OnceLock<Result<Cl100k, String>> = OnceLock::new();

impl Cl100k {
    /// The encoding, built on first use (≈ 0.2 s) and shared: it never changes.
    pub fn shared() -> Result<&'static Cl100k, String> {
        CL100K
            .get_or_init(|| {
                let bpe = tiktoken_rs::cl100k_base().map_err(|e| format!("cl100k_base: {e}"))?;
                let mut ranks = FxHashMap::default();
                // Ordinary tokens are ranks 0..100256; special tokens are counted as plain text.
                for rank in 0..100_256u32 {
                    if let Ok(bytes) = bpe.decode_bytes(&[rank]) {
                        ranks.insert(bytes, rank);
                    }
                }
                let pieces = Regex::new(&cl100k_pattern()).map_err(|e| format!("cl100k pattern: {e}"))?;
                Ok(Cl100k { ranks, pieces })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Tokens of `text` as js-tiktoken's `encode(text).length`.
    pub fn encode_len(&self, text: &str) -> Result<u32, String> {
        let mut n = 0u32;
        for m in self.pieces.find_iter(text) {
            let m = m.map_err(|e| format!("cl100k pre-tokenizer: {e}"))?;
            n += self.piece_len(m.as_str().as_bytes());
        }
        Ok(n)
    }

    fn piece_len(&self, piece: &[u8]) -> u32 {
        if piece.len() == 1 || self.ranks.contains_key(piece) {
            1
        } else {
            tiktoken_rs::byte_pair_split(piece, &self.ranks).len() as u32
        }
    }

    /// The pieces of `text` as (start, end) code-unit offsets.
    fn pieces_of(&self, text: &[u16]) -> Result<Vec<(usize, usize)>, String> {
        let s = String::from_utf16_lossy(text);
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        let mut byte = 0usize;
        let mut unit = 0usize;
        let advance = |from: usize, to: usize| -> usize { s[from..to].chars().map(char::len_utf16).sum() };
        for m in self.pieces.find_iter(&s) {
            let m = m.map_err(|e| format!("cl100k pre-tokenizer: {e}"))?;
            unit += advance(byte, m.start());
            let start = unit;
            unit += advance(m.start(), m.end());
            byte = m.end();
            out.push((start, unit));
        }
        Ok(out)
    }
}

/// Counts tokens of code-unit spans, caching the counts of short pieces (natural text repeats them).
pub struct Counter {
    enc: &'static Cl100k,
    cache: FxHashMap<Vec<u16>, u32>,
}

impl Counter {
    pub fn new(enc: &'static Cl100k) -> Self {
        Counter { enc, cache: FxHashMap::default() }
    }

    /// Tokens in `text`: the sum of its pieces' counts.
    pub fn count(&mut self, text: &[u16]) -> Result<u32, String> {
        let mut n = 0;
        for (a, b) in self.enc.pieces_of(text)? {
            n += self.piece_tokens(&text[a..b])?;
        }
        Ok(n)
    }

    /// Tokens in one piece; a piece longer than 64 units is counted in 64-unit slices.
    fn piece_tokens(&mut self, piece: &[u16]) -> Result<u32, String> {
        if piece.len() > MAX_EXACT_PIECE {
            let mut n = 0;
            let mut i = 0;
            while i < piece.len() {
                let j = slice_end(piece, i, piece.len());
                n += self.piece_tokens(&piece[i..j])?;
                i = j;
            }
            return Ok(n);
        }
        if let Some(&n) = self.cache.get(piece) {
            return Ok(n);
        }
        let n = self.enc.encode_len(&String::from_utf16_lossy(piece))?;
        if self.cache.len() >= MAX_CACHE_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(piece.to_vec(), n);
        Ok(n)
    }
}

fn slice_end(s: &[u16], i: usize, end: usize) -> usize {
    let mut j = end.min(i + MAX_EXACT_PIECE);
    if j < end && is_high_surrogate(s[j - 1]) {
        j -= 1;
    }
    j
}

fn is_high_surrogate(c: u16) -> bool {
    (0xd800..=0xdbff).contains(&c)
}

/// Same set as JavaScript's `\s`.
fn is_space(c: u16) -> bool {
    c == 32
        || (9..=13).contains(&c)
        || c == 0xa0
        || c == 0x1680
        || (0x2000..=0x200a).contains(&c)
        || c == 0x2028
        || c == 0x2029
        || c == 0x202f
        || c == 0x205f
        || c == 0x3000
        || c == 0xfeff
}

// ───────────────────────────── span arithmetic ─────────────────────────────

/// Token estimates for any span of one text, from one pass over its pieces (see `SpanTokens` in token.ts).
struct Spans<'t> {
    text: &'t [u16],
    starts: Vec<usize>,
    anchors: Vec<usize>,
    cum: Vec<i64>,
    lead_delta: FxHashMap<usize, i64>,
}

impl<'t> Spans<'t> {
    fn scan(text: &'t [u16], counter: &mut Counter) -> Result<Self, String> {
        let cap = (text.len() / 4).max(16);
        let mut starts = Vec::with_capacity(cap);
        let mut anchors = Vec::with_capacity(cap);
        let mut cum = Vec::with_capacity(cap + 1);
        cum.push(0i64);
        let mut total = 0i64;
        for (a, b) in counter.enc.pieces_of(text)? {
            let piece = &text[a..b];
            let mut lead = 0;
            while lead < piece.len() && is_space(piece[lead]) {
                lead += 1;
            }
            let anchor = a + if lead < piece.len() { lead } else { 0 };
            if piece.len() <= MAX_EXACT_PIECE {
                starts.push(a);
                anchors.push(anchor);
                total += counter.piece_tokens(piece)? as i64;
                cum.push(total);
                continue;
            }
            let mut i = 0;
            while i < piece.len() {
                let j = slice_end(piece, i, piece.len());
                starts.push(a + i);
                anchors.push(if i == 0 { anchor } else { a + i });
                total += counter.piece_tokens(&piece[i..j])? as i64;
                cum.push(total);
                i = j;
            }
        }
        Ok(Spans { text, starts, anchors, cum, lead_delta: FxHashMap::default() })
    }

    fn n(&self) -> usize {
        self.anchors.len()
    }

    fn tokens(&mut self, a: usize, b: usize, counter: &mut Counter) -> Result<i64, String> {
        if b <= a {
            return Ok(0);
        }
        let first = self.first_at_or_after(a);
        let mut n = self.cum[self.first_at_or_after(b)] - self.cum[first];
        if first < self.n() && self.anchors[first] == a && self.starts[first] < a {
            n += self.start_delta(first, counter)?;
        }
        Ok(n)
    }

    fn anchors_within(&self, a: usize, b: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut k = self.first_at_or_after(a + 1);
        while k < self.n() && self.anchors[k] < b {
            out.push(self.anchors[k]);
            k += 1;
        }
        out
    }

    fn start_delta(&mut self, k: usize, counter: &mut Counter) -> Result<i64, String> {
        if let Some(&d) = self.lead_delta.get(&k) {
            return Ok(d);
        }
        let end = if k + 1 < self.n() { self.starts[k + 1] } else { self.text.len() };
        let whole = self.cum[k + 1] - self.cum[k];
        let d = counter.piece_tokens(&self.text[self.anchors[k]..end])? as i64 - whole;
        self.lead_delta.insert(k, d);
        Ok(d)
    }

    fn first_at_or_after(&self, pos: usize) -> usize {
        self.anchors.partition_point(|&x| x < pos)
    }
}

// ───────────────────────────── boundaries ─────────────────────────────

/// Boundary kinds, coarsest first: a blank line, a sentence end, a line end, any space.
const LEVELS: usize = 4;
const PIECE_LEVEL: usize = LEVELS;
const CHAR_LEVEL: usize = LEVELS + 1;

fn is_sentence_end(c: u16) -> bool {
    matches!(c, 0x2e | 0x21 | 0x3f | 0x2026) // . ! ? …
}

fn is_closer(c: u16) -> bool {
    matches!(c, 0x22 | 0x27 | 0x201d | 0x2019 | 0x29 | 0x5d) // " ' ” ’ ) ]
}

fn is_cjk_stop(c: u16) -> bool {
    matches!(c, 0x3002 | 0xff01 | 0xff1f) // 。！？
}

/// The first match of boundary `level` at or after `from`, as the JS regexes find it: (index, length).
fn find_boundary(t: &[u16], level: usize, from: usize) -> Option<(usize, usize)> {
    let n = t.len();
    match level {
        // /\n[^\S\n]*\n/
        0 => {
            let mut i = from;
            while i < n {
                if t[i] == 10 {
                    let mut j = i + 1;
                    while j < n && t[j] != 10 && is_space(t[j]) {
                        j += 1;
                    }
                    if j < n && t[j] == 10 {
                        return Some((i, j + 1 - i));
                    }
                }
                i += 1;
            }
            None
        }
        // /(?<=[.!?…]["'”’)\]]*)\s+|(?<=[。！？])/u
        1 => {
            let mut i = from;
            while i <= n {
                if i < n && is_space(t[i]) {
                    let mut k = i;
                    while k > 0 && is_closer(t[k - 1]) {
                        k -= 1;
                    }
                    if k > 0 && is_sentence_end(t[k - 1]) {
                        let mut j = i;
                        while j < n && is_space(t[j]) {
                            j += 1;
                        }
                        return Some((i, j - i));
                    }
                }
                if i > 0 && is_cjk_stop(t[i - 1]) {
                    return Some((i, 0));
                }
                i += 1;
            }
            None
        }
        // /\n/
        2 => t[from.min(n)..].iter().position(|&c| c == 10).map(|p| (from + p, 1)),
        // /\s+/
        _ => {
            let p = t[from.min(n)..].iter().position(|&c| is_space(c))? + from;
            let mut j = p;
            while j < n && is_space(t[j]) {
                j += 1;
            }
            Some((p, j - p))
        }
    }
}

fn trim(t: &[u16], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_space(t[start]) {
        start += 1;
    }
    while end > start && is_space(t[end - 1]) {
        end -= 1;
    }
    (start, end)
}

// ───────────────────────────── the splitter ─────────────────────────────

#[derive(Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
    level: usize,
}

/// The token splitter's options (validated by the caller: max ≥ 8, overlap < max).
#[derive(Clone, Copy)]
pub struct SplitOptions {
    pub max_tokens: u32,
    pub min_tokens: u32,
    pub overlap_tokens: u32,
}

struct Splitter<'t, 'c> {
    text: &'t [u16],
    spans: Spans<'t>,
    counter: &'c mut Counter,
    opts: SplitOptions,
}

/// The chunks of one text as (start, end) code-unit offsets, in order.
pub fn split_text(text: &[u16], counter: &mut Counter, opts: SplitOptions) -> Result<Vec<(usize, usize)>, String> {
    let (start, end) = trim(text, 0, text.len());
    if start >= end {
        return Ok(Vec::new());
    }
    let spans = Spans::scan(text, counter)?;
    let mut sp = Splitter { text, spans, counter, opts };
    let max = opts.max_tokens as i64;
    let mut units = Vec::new();
    sp.collect(start, end, 0, max, &mut units)?;

    let mut chunks = Vec::new();
    let mut i = 0;
    let mut s = units[0].start;
    while i < units.len() {
        let mut j = i;
        while j + 1 < units.len() && !cut_greedily(&units[j], &units[j + 1]) && sp.tokens(s, units[j + 1].end)? <= max {
            j += 1;
        }
        j = sp.balance_tail(&units, i, j)?;
        loop {
            let exact = sp.counter.count(&text[s..units[j].end])? as i64;
            if exact <= max {
                break;
            }
            if j > i {
                j -= 1;
            } else if s < units[i].start {
                s = units[i].start;
            } else {
                let unit = units[i];
                let mut finer = Vec::new();
                sp.cut(unit, max - (exact - max), &mut finer)?;
                if unit.level >= CHAR_LEVEL && finer.len() == 1 && finer[0].start == unit.start && finer[0].end == unit.end {
                    let mut mid = (unit.start + unit.end) / 2;
                    if is_high_surrogate(text[mid - 1]) {
                        mid += 1;
                    }
                    finer = vec![
                        Unit { start: unit.start, end: mid, level: CHAR_LEVEL },
                        Unit { start: mid, end: unit.end, level: CHAR_LEVEL },
                    ];
                }
                units.splice(i..i + 1, finer);
                j = i;
            }
        }
        chunks.push((s, units[j].end));
        let prev_start = s;
        i = j + 1;
        if i < units.len() {
            s = sp.overlap_start(&units, prev_start, units[j].end, i)?;
        }
    }
    Ok(chunks)
}

fn cut_greedily(a: &Unit, b: &Unit) -> bool {
    a.level == CHAR_LEVEL && b.level == CHAR_LEVEL && a.end == b.start
}

impl Splitter<'_, '_> {
    fn tokens(&mut self, a: usize, b: usize) -> Result<i64, String> {
        self.spans.tokens(a, b, self.counter)
    }

    fn count(&mut self, a: usize, b: usize) -> Result<i64, String> {
        Ok(self.counter.count(&self.text[a..b])? as i64)
    }

    fn collect(&mut self, start: usize, end: usize, level: usize, budget: i64, out: &mut Vec<Unit>) -> Result<(), String> {
        let (start, end) = trim(self.text, start, end);
        if start >= end {
            return Ok(());
        }
        if self.tokens(start, end)? <= budget {
            out.push(Unit { start, end, level });
            Ok(())
        } else {
            self.cut(Unit { start, end, level }, budget, out)
        }
    }

    fn cut(&mut self, unit: Unit, budget: i64, out: &mut Vec<Unit>) -> Result<(), String> {
        let Unit { start, end, level } = unit;
        let budget = budget.max(1);
        if level == PIECE_LEVEL {
            return self.cut_at_pieces(start, end, budget, out);
        }
        if level > PIECE_LEVEL {
            return self.cut_at_chars(start, end, budget, out);
        }
        let mut from = start;
        let mut last_index = start;
        while let Some((index, len)) = find_boundary(self.text, level, last_index) {
            if index >= end || index + len > end {
                break;
            }
            self.collect(from, index, level + 1, budget, out)?;
            from = index + len;
            last_index = index + len;
            if len == 0 {
                last_index += 1;
            }
        }
        self.collect(from, end, level + 1, budget, out)
    }

    fn cut_at_pieces(&mut self, start: usize, end: usize, budget: i64, out: &mut Vec<Unit>) -> Result<(), String> {
        let mut cuts = self.spans.anchors_within(start, end);
        cuts.push(end);
        let mut s = start;
        let mut k = 0;
        while s < end {
            let mut best: Option<usize> = None;
            while k < cuts.len() && self.tokens(s, cuts[k])? <= budget {
                best = Some(k);
                k += 1;
            }
            match best {
                None => {
                    let piece_end = cuts.get(k).copied().unwrap_or(end);
                    self.cut_at_chars(s, piece_end, budget, out)?;
                    s = piece_end;
                    k += 1;
                }
                Some(b) => {
                    out.push(Unit { start: s, end: cuts[b], level: CHAR_LEVEL });
                    s = cuts[b];
                }
            }
        }
        Ok(())
    }

    fn cut_at_chars(&mut self, start: usize, end: usize, budget: i64, out: &mut Vec<Unit>) -> Result<(), String> {
        let text = self.text;
        let mut s = start;
        while s < end {
            let mut e = s;
            let mut used = 0i64;
            while e < end {
                let next = slice_end(text, e, end);
                let t = self.count(e, next)?;
                if used + t <= budget {
                    used += t;
                    e = next;
                    continue;
                }
                let mut lo = 0usize;
                let mut hi = next - e - 1;
                while lo < hi {
                    let mid = (lo + hi + 1) / 2;
                    if used + self.count(e, e + mid)? <= budget {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                e += lo;
                break;
            }
            if e == s {
                e = s + 1;
            }
            if e < end && is_high_surrogate(text[e - 1]) {
                if e - 1 > s {
                    e -= 1;
                } else {
                    e += 1;
                }
            }
            out.push(Unit { start: s, end: e, level: CHAR_LEVEL });
            s = e;
        }
        Ok(())
    }

    fn balance_tail(&mut self, units: &[Unit], i: usize, j: usize) -> Result<usize, String> {
        let min = self.opts.min_tokens as i64;
        if min <= 0 || j + 1 >= units.len() {
            return Ok(j);
        }
        let end = units[units.len() - 1].end;
        if self.tokens(units[j + 1].start, end)? >= min {
            return Ok(j);
        }
        let mut k = j;
        while k > i {
            k -= 1;
            let rest = self.tokens(units[k + 1].start, end)?;
            if rest > self.opts.max_tokens as i64 {
                break;
            }
            if rest >= min {
                return Ok(k);
            }
        }
        Ok(j)
    }

    fn overlap_start(&mut self, units: &[Unit], prev_start: usize, prev_end: usize, next: usize) -> Result<usize, String> {
        let overlap = self.opts.overlap_tokens as i64;
        let max = self.opts.max_tokens as i64;
        let next_unit = units[next];
        if overlap <= 0 {
            return Ok(next_unit.start);
        }
        let last = units[units.len() - 1].end;
        let target = if self.tokens(next_unit.start, last)? <= max { last } else { next_unit.end };
        let text = self.text;
        let mut best = next_unit.start;
        let mut p = prev_end;
        loop {
            let mut w = p;
            while w > prev_start && !is_space(text[w - 1]) {
                w -= 1;
            }
            if w <= prev_start {
                break;
            }
            if self.tokens(w, prev_end)? > overlap || self.tokens(w, target)? > max {
                break;
            }
            best = w;
            p = w;
            while p > prev_start && is_space(text[p - 1]) {
                p -= 1;
            }
        }
        Ok(best)
    }
}

/// Splits each of `texts` (concatenated UTF-16, `lengths` code units each) and packs the result
/// as one array: for each text, its chunk count, then start and end of each chunk (offsets within that text).
pub fn split_texts(units: &[u16], lengths: &[u32], opts: SplitOptions) -> Result<Vec<u32>, String> {
    let enc = Cl100k::shared()?;
    let mut counter = Counter::new(enc);
    let mut out = Vec::with_capacity(lengths.len() * 3);
    let mut at = 0usize;
    for &len in lengths {
        let len = len as usize;
        let text = units.get(at..at + len).ok_or("split: the lengths add up to more than the text")?;
        at += len;
        let chunks = split_text(text, &mut counter, opts)?;
        out.push(chunks.len() as u32);
        for (s, e) in chunks {
            out.push(s as u32);
            out.push(e as u32);
        }
    }
    Ok(out)
}

/// Tokens of each text (concatenated UTF-16, `lengths` code units each), counted as the splitter counts.
pub fn count_tokens(units: &[u16], lengths: &[u32]) -> Result<Vec<u32>, String> {
    let mut counter = Counter::new(Cl100k::shared()?);
    let mut out = Vec::with_capacity(lengths.len());
    let mut at = 0usize;
    for &len in lengths {
        let len = len as usize;
        let text = units.get(at..at + len).ok_or("count: the lengths add up to more than the text")?;
        at += len;
        out.push(counter.count(text)?);
    }
    Ok(out)
}

// ───────────────────────────── the N-API face ─────────────────────────────

fn utf16_units(texts: &[u8]) -> Vec<u16> {
    texts.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
}

/// Splits a group of texts (UTF-16 LE, concatenated; `lengths` in code units) on the thread
/// pool: one array with, per text, its chunk count and each chunk's start and end offset.
#[napi_derive::napi(catch_unwind)]
pub fn split_token_chunks(
    texts: napi::bindgen_prelude::Buffer,
    lengths: napi::bindgen_prelude::Uint32Array,
    max_tokens: u32,
    min_tokens: u32,
    overlap_tokens: u32,
) -> napi::Result<napi::bindgen_prelude::AsyncTask<crate::Job<napi::bindgen_prelude::Uint32Array>>> {
    if max_tokens < 8 || overlap_tokens >= max_tokens {
        return Err(napi::Error::from_reason("split: max_tokens must be at least 8 and overlap_tokens smaller than it"));
    }
    let units = utf16_units(&texts);
    let lengths = lengths.to_vec();
    let opts = SplitOptions { max_tokens, min_tokens, overlap_tokens };
    Ok(crate::job(move || {
        split_texts(&units, &lengths, opts)
            .map(napi::bindgen_prelude::Uint32Array::new)
            .map_err(crate::error::Error)
    }))
}

/// Tokens of each of a group of texts (UTF-16 LE, concatenated), counted as the splitter counts.
#[napi_derive::napi(catch_unwind)]
pub fn count_split_tokens(
    texts: napi::bindgen_prelude::Buffer,
    lengths: napi::bindgen_prelude::Uint32Array,
) -> napi::bindgen_prelude::AsyncTask<crate::Job<napi::bindgen_prelude::Uint32Array>> {
    let units = utf16_units(&texts);
    let lengths = lengths.to_vec();
    crate::job(move || {
        count_tokens(&units, &lengths)
            .map(napi::bindgen_prelude::Uint32Array::new)
            .map_err(crate::error::Error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn counts_as_tiktoken_does() {
        let mut c = Counter::new(Cl100k::shared().unwrap());
        assert_eq!(c.count(&u("hello world")).unwrap(), 2);
        assert_eq!(c.count(&u("данные")).unwrap(), 3);
        assert_eq!(c.count(&u(" данные")).unwrap(), 2);
        assert_eq!(c.count(&u("<|endoftext|>")).unwrap(), 7);
    }

    #[test]
    fn splits_between_sentences() {
        let mut c = Counter::new(Cl100k::shared().unwrap());
        let text = u("One sentence here. Another one there. And a third one, longer than the rest of them.");
        let opts = SplitOptions { max_tokens: 10, min_tokens: 0, overlap_tokens: 0 };
        let chunks = split_text(&text, &mut c, opts).unwrap();
        assert!(chunks.len() >= 3);
        assert_eq!(chunks[0], (0, 18));
        for (s, e) in chunks {
            assert!(c.count(&text[s..e]).unwrap() <= 10);
        }
    }
}
