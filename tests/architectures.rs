//! The encoder families behind `config.json` `model_type`: the fused CPU path against
//! Candle's ops, and broken model directories refused with a `ModelLoadError`.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, Case};
use tessera::models::checkpoint::{weight_files, Checkpoint};
use tessera::models::load_text_model;
use tessera::packing::PackedBatch;
use tessera::{DenseEmbedder, MultiVectorEmbedder, TesseraError};

fn text_cases() -> Vec<Case> {
    let mut cases = Case::all("dense");
    cases.extend(Case::all("multivector"));
    cases
        .into_iter()
        .filter(|c| c.dir.join("model/model.safetensors").is_file())
        .collect()
}

fn config(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// Every family's fused f32 kernels agree with the same model run through Candle's ops
/// in f64 (which the kernels never take).
#[test]
fn fused_cpu_path_matches_candle_ops_for_every_family() {
    let sequences: Vec<Vec<u32>> = [1usize, 5, 17, 40, 3]
        .iter()
        .enumerate()
        .map(|(t, &len)| {
            (0..len)
                .map(|i| ((i * 7 + t * 3) % 90 + 5) as u32)
                .collect()
        })
        .collect();
    let batches = [
        PackedBatch::new(&sequences, None),
        PackedBatch::new(&sequences, Some(&[1, 5, 12, 33, 2])),
    ];
    for case in text_cases() {
        let dir = case.dir.join("model");
        let raw = config(&dir);
        let model_type = raw["model_type"].as_str().unwrap_or("bert").to_string();
        let load = |dtype: DType| {
            let vb = Checkpoint::open(&weight_files(&dir).unwrap(), &["bert.", "model."])
                .unwrap()
                .into_var_builder(dtype, &Device::Cpu);
            load_text_model(&model_type, raw.clone(), vb).unwrap()
        };
        let (fast, reference) = (load(DType::F32), load(DType::F64));
        for batch in &batches {
            let got = fast.forward(batch).unwrap();
            let want = reference
                .forward(batch)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            let diff = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff <= 1e-4, "{} ({model_type}): {diff}", case.name());
        }
    }
}

/// A writable copy of a golden model directory.
fn copy_model(case: &str) -> tempfile::TempDir {
    let source = fixtures().join("golden").join(case).join("model");
    let target = tempfile::tempdir().unwrap();
    copy_dir(&source, target.path());
    target
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut raw = config(dir);
    edit(&mut raw);
    std::fs::write(dir.join("config.json"), raw.to_string()).unwrap();
}

fn load_error(dir: &Path) -> String {
    let err = DenseEmbedder::builder()
        .model(dir.to_string_lossy())
        .build()
        .err()
        .expect("the broken model must not load");
    match err {
        TesseraError::ModelLoad { reason, .. } => reason,
        other => panic!("expected a ModelLoadError, got {other:?}"),
    }
}

const FAMILIES: &[&str] = &[
    "dense/tiny_bge_cls",
    "dense/tiny_xlmr_cls",
    "dense/tiny_nomic_mean",
    "dense/tiny_gte_cls",
    "dense/tiny_modernbert_mean",
    "dense/tiny_qwen3_last",
    "dense/tiny_embeddinggemma",
];

#[test]
fn an_unknown_model_type_names_the_supported_ones() {
    let dir = copy_model("dense/tiny_bge_cls");
    edit_config(dir.path(), |c| c["model_type"] = "perceiver".into());
    let reason = load_error(dir.path());
    for named in [
        "perceiver",
        "bert",
        "xlm-roberta",
        "nomic_bert",
        "modernbert",
    ] {
        assert!(reason.contains(named), "{reason}");
    }
}

#[test]
fn a_missing_tensor_is_named() {
    for case in FAMILIES {
        let dir = copy_model(case);
        let path = dir.path().join("model.safetensors");
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let dropped = tensors
            .keys()
            .filter(|k| k.contains("layer") && k.ends_with("weight"))
            .max()
            .unwrap()
            .clone();
        let kept: std::collections::HashMap<String, Tensor> =
            tensors.into_iter().filter(|(k, _)| *k != dropped).collect();
        candle_core::safetensors::save(&kept, &path).unwrap();
        let reason = load_error(dir.path());
        assert!(reason.contains(&dropped), "{case}: {reason}");
    }
}

#[test]
fn a_config_that_contradicts_the_weights_is_a_load_error() {
    for case in FAMILIES {
        let dir = copy_model(case);
        edit_config(dir.path(), |c| {
            let key = if c.get("n_embd").is_some() {
                "n_embd"
            } else {
                "hidden_size"
            };
            c[key] = 48.into();
        });
        let reason = load_error(dir.path());
        assert!(reason.contains("shape"), "{case}: {reason}");
        // Heads that do not divide the hidden size, and a layer count beyond the weights.
        let dir = copy_model(case);
        edit_config(dir.path(), |c| {
            let key = if c.get("n_head").is_some() {
                "n_head"
            } else {
                "num_attention_heads"
            };
            c[key] = 5.into();
        });
        let reason = load_error(dir.path());
        assert!(
            reason.contains("heads") || reason.contains("shape"),
            "{case}: {reason}"
        );
        let dir = copy_model(case);
        edit_config(dir.path(), |c| {
            let key = if c.get("n_layer").is_some() {
                "n_layer"
            } else {
                "num_hidden_layers"
            };
            c[key] = 9.into();
        });
        let reason = load_error(dir.path());
        assert!(
            reason.contains("missing") || reason.contains("layer_types"),
            "{case}: {reason}"
        );
        // A config field of the wrong type.
        let dir = copy_model(case);
        edit_config(dir.path(), |c| c["vocab_size"] = "many".into());
        let reason = load_error(dir.path());
        assert!(
            reason.contains("vocab_size") || reason.contains("invalid"),
            "{case}: {reason}"
        );
    }
}

#[test]
fn a_modernbert_colbert_checkpoint_loads_like_a_bert_one() {
    let case = &Case::all("multivector")
        .into_iter()
        .find(|c| c.name() == "tiny_modernbert_colbert")
        .unwrap();
    let model = MultiVectorEmbedder::builder()
        .model(case.model_dir().to_string_lossy())
        .build()
        .unwrap();
    assert_eq!((model.query_length(), model.document_length()), (16, 48));
    assert_eq!(model.dimension(), 16);
}

mod causal {
    use super::*;
    use proptest::prelude::*;

    fn qwen3() -> Box<dyn tessera::models::TextModel> {
        let dir = fixtures().join("golden/dense/tiny_qwen3_last/model");
        let vb = Checkpoint::open(&weight_files(&dir).unwrap(), &["model."])
            .unwrap()
            .into_var_builder(DType::F32, &Device::Cpu);
        load_text_model("qwen3", config(&dir), vb).unwrap()
    }

    fn rows(hidden: &Tensor, start: usize, len: usize) -> Vec<f32> {
        hidden
            .narrow(0, start, len)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A causal model's states of a text do not depend on what follows it: not on
        /// the next text of a packed batch, nor on its own later tokens.
        #[test]
        fn a_text_is_independent_of_what_follows_it(
            a in prop::collection::vec(0u32..1900, 1..40),
            b in prop::collection::vec(0u32..1900, 1..40),
            c in prop::collection::vec(0u32..1900, 1..40),
            cut in 1usize..40,
        ) {
            let model = qwen3();
            let alone = model.forward(&PackedBatch::new(std::slice::from_ref(&a), None)).unwrap();
            let with_b = model.forward(&PackedBatch::new(&[a.clone(), b.clone()], None)).unwrap();
            let with_c = model.forward(&PackedBatch::new(&[a.clone(), c], None)).unwrap();
            let want = rows(&alone, 0, a.len());
            prop_assert!(max_diff(&rows(&with_b, 0, a.len()), &want) <= 1e-5);
            prop_assert!(max_diff(&rows(&with_c, 0, a.len()), &want) <= 1e-5);
            let b_alone = model.forward(&PackedBatch::new(std::slice::from_ref(&b), None)).unwrap();
            prop_assert!(
                max_diff(&rows(&with_b, a.len(), b.len()), &rows(&b_alone, 0, b.len())) <= 1e-5
            );
            let cut = cut.min(a.len());
            let prefix = model.forward(&PackedBatch::new(&[a[..cut].to_vec()], None)).unwrap();
            prop_assert!(max_diff(&rows(&prefix, 0, cut), &want[..cut * model.hidden_size()]) <= 1e-5);
        }
    }
}
