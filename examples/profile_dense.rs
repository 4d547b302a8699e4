//! Encodes the benchmark corpus in a loop for profiling (`perf record`) and prints
//! sentences/s and the achieved GFLOP/s.
//!
//! `cargo run --release --example profile_dense -- [sentences] [repeats] [batch] [f32|bf16|int8]`

#[path = "../benches/corpus/mod.rs"]
mod corpus;

use std::path::Path;
use std::time::Instant;

use tessera::{DType, DenseEmbedder, EncodeOptions, Quantize};

const MODEL: &str = "tests/fixtures/real/dense/minilm_real/model";

fn arg(index: usize, default: usize) -> usize {
    std::env::args()
        .nth(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// User plus system time of this process so far (Linux), to see through other load.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum::<f64>() / 100.0
}

fn main() -> tessera::Result<()> {
    let (count, repeats, batch) = (arg(1, 2048), arg(2, 3), arg(3, 32));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let builder = DenseEmbedder::builder().model(dir.to_string_lossy());
    let model = match std::env::args().nth(4).as_deref() {
        None | Some("f32") => builder,
        Some("bf16") => builder.dtype(DType::BF16),
        Some("int8") => builder.quantize(Quantize::Int8),
        Some(other) => {
            return Err(tessera::TesseraError::Config(format!(
                "precision '{other}' is not f32, bf16 or int8"
            )))
        }
    }
    .build()?;
    let texts = corpus::sentences(count);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Multiply-adds of MiniLM-L6 (hidden 384, intermediate 1536, 6 layers) per text.
    let (hidden, inner, layers) = (384.0, 1536.0, 6.0);
    let flops: f64 = model
        .tokenize(&refs)?
        .iter()
        .map(|ids| {
            let n = ids.len() as f64;
            layers * (2.0 * n * hidden * (4.0 * hidden + 2.0 * inner) + 4.0 * n * n * hidden)
        })
        .sum();
    let options = EncodeOptions {
        batch_size: Some(batch),
        show_progress: false,
        ..EncodeOptions::default()
    };
    // Inside a pool, as the Python bindings run: parallel regions start on a worker.
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .expect("a thread pool");
    for _ in 0..repeats {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let out = pool.install(|| model.encode_batch(&refs, &options))?;
        let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
        println!(
            "{count} sentences in {secs:.3} s ({cpu:.2} CPU s): {:.1} sentences/s, {:.1} GFLOP/s, \
             {:.1} GFLOP per CPU second (checksum {:.6})",
            count as f64 / secs,
            flops / secs / 1e9,
            flops / cpu / 1e9,
            out.data.iter().map(|v| f64::from(*v)).sum::<f64>()
        );
    }
    Ok(())
}
