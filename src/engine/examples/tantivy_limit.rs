//! The text-index limit of `npm run bench -- --scale …`: a raw tantivy index of the same chunk
//! texts livedex indexes, with the engine's schema, analyzer and writer settings (`src/text.rs`:
//! `chunk_id` u64 indexed/fast/stored, `doc_key` string, `body` `en_stem` with positions; one
//! writer thread, 64 MB heap) and one commit at the end. No store, no change log, no napi: what
//! is left is what tantivy itself costs.
//!
//! `cargo run --release --example tantivy_limit -- <chunks.bin> <index dir> [chunks per document] [threads] [heap bytes]`
//! where `chunks.bin` is `u32 LE length` + UTF-8 text per chunk (bench/synth.ts). Prints one JSON line.

use std::time::Instant;

use tantivy::indexer::LogMergePolicy;
use tantivy::schema::{IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, STRING};
use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer};
use tantivy::{Index, IndexWriter, TantivyDocument};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: tantivy_limit <chunks.bin> <index dir> [chunks per document] [threads] [heap bytes]".into());
    }
    let per_doc: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let threads: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let heap: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(64_000_000);

    let started = Instant::now();
    let raw = std::fs::read(&args[1])?;
    let mut texts: Vec<&str> = Vec::new();
    let mut at = 0;
    while at + 4 <= raw.len() {
        let n = u32::from_le_bytes(raw[at..at + 4].try_into()?) as usize;
        texts.push(std::str::from_utf8(&raw[at + 4..at + 4 + n])?);
        at += 4 + n;
    }
    let read_s = started.elapsed().as_secs_f64();

    let mut b = Schema::builder();
    let chunk_id = b.add_u64_field("chunk_id", NumericOptions::default().set_indexed().set_fast().set_stored());
    let doc_key = b.add_text_field("doc_key", STRING);
    let body = b.add_text_field(
        "body",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    let dir = std::path::Path::new(&args[2]);
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let index = Index::create_in_dir(dir, b.build())?;
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register("en_stem", analyzer);
    let mut writer: IndexWriter<TantivyDocument> = index.writer_with_num_threads(threads, heap)?;
    let mut policy = LogMergePolicy::default();
    policy.set_del_docs_ratio_before_merge(0.3);
    writer.set_merge_policy(Box::new(policy));

    let t = Instant::now();
    for (i, text) in texts.iter().enumerate() {
        let mut d = TantivyDocument::new();
        d.add_u64(chunk_id, i as u64 + 1);
        d.add_text(doc_key, format!("fs:c{}.txt", i / per_doc.max(1)));
        d.add_text(body, text);
        writer.add_document(d)?;
    }
    let added_s = t.elapsed().as_secs_f64();
    writer.commit()?;
    let index_s = t.elapsed().as_secs_f64();
    writer.wait_merging_threads()?;
    let bytes: u64 = std::fs::read_dir(dir)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    println!(
        "{{\"chunks\":{},\"read_s\":{read_s:.3},\"added_s\":{added_s:.3},\"index_s\":{index_s:.3},\"chunks_per_s\":{:.0},\"bytes\":{bytes},\"threads\":{threads},\"heap\":{heap}}}",
        texts.len(),
        texts.len() as f64 / index_s
    );
    Ok(())
}
