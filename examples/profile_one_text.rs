//! One short text per call on a small model, in a loop, for profiling the fixed cost of a
//! call (`perf record`); prints the median microseconds per call.
//!
//! `cargo run --release --example profile_one_text -- [model dir] [calls] [words] [f32|bf16|int8]`

use std::time::Instant;

use tessera::{DType, DenseEmbedder, Quantize};

const MODEL: &str = "tests/fixtures/golden/dense/tiny_mean_nonorm/model";

fn main() -> tessera::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| MODEL.to_string());
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let words: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let text = ["hello", "world", "late", "interaction", "retrieval"]
        .iter()
        .cycle()
        .take(words)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let builder = DenseEmbedder::builder().model(dir);
    let model = match args.next().as_deref() {
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
    // Inside a pool, as the Python bindings run: parallel regions start on a worker.
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .expect("a thread pool");
    let mut times = pool.install(|| -> tessera::Result<Vec<f64>> {
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            let start = Instant::now();
            std::hint::black_box(model.encode(&text)?);
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        Ok(times)
    })?;
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.1} us per call over {calls} calls",
        times[calls / 2]
    );
    Ok(())
}
