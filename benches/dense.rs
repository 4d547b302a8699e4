//! Throughput of dense encoding: the real all-MiniLM-L6-v2 over a fixed corpus of
//! mixed-length sentences at batch 32, reported as sentences per second.

mod corpus;

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera::{DenseEmbedder, EncodeOptions};

const MODEL: &str = "tests/fixtures/real/dense/minilm_real/model";
const SENTENCES: usize = 2048;
const BATCH: usize = 32;

fn dense(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let model = DenseEmbedder::builder()
        .model(dir.to_string_lossy())
        .build()
        .expect("the real MiniLM fixture (tests/fixtures/real/dense/minilm_real)");
    let texts = corpus::sentences(SENTENCES);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let options = EncodeOptions {
        batch_size: Some(BATCH),
        show_progress: false,
        ..EncodeOptions::default()
    };
    let mut group = c.benchmark_group("dense");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SENTENCES as u64));
    group.bench_function("minilm_l6_batch32", |b| {
        b.iter(|| model.encode_batch(&refs, &options).expect("encode"))
    });
    group.finish();
}

criterion_group!(benches, dense);
criterion_main!(benches);
