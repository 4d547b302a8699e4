//! SPLADE sparse vectors against sentence-transformers' `SparseEncoder` in the golden
//! data, plus the properties every sparse vector must have.

mod common;

use std::collections::BTreeSet;

use common::{assert_close, tolerances, Case};
use serde_json::Value;
use tessera::{EncodeOptions, SparseBuilder, SparseEmbedder, SparseVector, TesseraError};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn load(case: &Case) -> SparseEmbedder {
    SparseEmbedder::builder()
        .model(case.model_dir().to_string_lossy())
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", case.name()))
}

/// The texts a check runs on (`inputs` names one list of `inputs`).
fn check_texts(case: &Case, check: &Value) -> Vec<String> {
    case.texts(check["inputs"].as_str().unwrap_or("texts"))
}

fn encode_all(model: &SparseEmbedder, texts: &[String]) -> Vec<SparseVector> {
    model
        .encode_batch(&strs(texts), &EncodeOptions::default())
        .unwrap()
}

/// Rows of a CSR block of `expected.npz` as index ranges.
fn csr_rows(offsets: &[i64]) -> Vec<std::ops::Range<usize>> {
    offsets
        .windows(2)
        .map(|w| w[0] as usize..w[1] as usize)
        .collect()
}

#[test]
fn sparse_vectors_match_sentence_transformers() {
    for case in Case::all("sparse") {
        let check = case.check("sparse").expect("a sparse check");
        let keys = &check["expected"];
        let model = load(&case);
        let texts = check_texts(&case, check);
        let got = encode_all(&model, &texts);
        let (atol, rtol) = tolerances(check);
        let offsets = case.array_i64(keys["offsets"].as_str().unwrap());
        let indices = case.array_i64(keys["indices"].as_str().unwrap());
        let (_, values) = case.array_f32(keys["values"].as_str().unwrap());
        assert_eq!(got.len(), offsets.len() - 1, "{}", case.name());
        for (i, (vector, rows)) in got.iter().zip(csr_rows(&offsets)).enumerate() {
            let label = format!("{} text {i}", case.name());
            assert_eq!(vector.vocab_size, model.vocab_size(), "{label}");
            let mut want = vec![0f32; vector.vocab_size];
            for r in rows {
                want[indices[r] as usize] = values[r];
            }
            let mine = vector.to_dense();
            assert_close(&label, &mine, &want, atol, rtol);
            // Weights clearly above zero must agree on presence; tiny ones may flip.
            for (id, (g, w)) in mine.iter().zip(&want).enumerate() {
                assert!(
                    !(*w > 1e-3 && *g == 0.0),
                    "{label}: id {id} missing (reference {w})"
                );
                assert!(
                    !(*g > 1e-3 && *w == 0.0),
                    "{label}: id {id} extra (value {g})"
                );
            }
        }
    }
}

/// Groups of ranks (0-based) whose order may swap: the listed near-tie pairs, chained.
fn near_tie_groups(entry: &Value) -> Vec<BTreeSet<usize>> {
    let mut groups: Vec<BTreeSet<usize>> = Vec::new();
    for pair in entry["near_ties_between_ranks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let ranks: Vec<usize> = pair
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_u64().unwrap() as usize)
            .collect();
        match groups
            .iter_mut()
            .find(|g| ranks.iter().any(|r| g.contains(r)))
        {
            Some(group) => group.extend(ranks),
            None => groups.push(ranks.into_iter().collect()),
        }
    }
    groups
}

/// Equal rank by rank, except inside a near-tie group, where only the set must match.
fn assert_ranked_equal<T: Ord + Clone + std::fmt::Debug>(
    label: &str,
    got: &[T],
    want: &[T],
    ties: &[BTreeSet<usize>],
) {
    assert_eq!(got.len(), want.len(), "{label}: number of top terms");
    for rank in 0..want.len() {
        match ties.iter().find(|g| g.contains(&rank)) {
            Some(group) => {
                let pick = |v: &[T]| {
                    let mut items: Vec<T> = group
                        .iter()
                        .filter(|&&r| r < v.len())
                        .map(|&r| v[r].clone())
                        .collect();
                    items.sort();
                    items
                };
                assert_eq!(
                    pick(got),
                    pick(want),
                    "{label}: near tie at ranks {group:?}"
                );
            }
            None => assert_eq!(got[rank], want[rank], "{label}: rank {rank}"),
        }
    }
}

#[test]
fn top_tokens_match_the_reference_decoding() {
    for case in Case::all("sparse") {
        let Some(check) = case.check("topk") else {
            continue;
        };
        let k = check["options"]["top_k"].as_u64().unwrap() as usize;
        let model = load(&case);
        let texts = check_texts(&case, check);
        let vectors = encode_all(&model, &texts);
        let ids = case.array_i64(check["expected"]["token_ids"].as_str().unwrap());
        let (_, values) = case.array_f32(check["expected"]["values"].as_str().unwrap());
        let entries = case.cases["top_tokens"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, vector) in vectors.iter().enumerate() {
            let label = format!("{} text {i}", case.name());
            let entry = entries
                .iter()
                .find(|e| e["input"].as_u64() == Some(i as u64));
            let ties = entry.map(near_tie_groups).unwrap_or_default();
            let top = model.tokens(vector, Some(k));
            assert!(top.len() <= k, "{label}");
            // The npz pads rows shorter than k with id -1.
            let row = i * k..(i + 1) * k;
            let want_ids: Vec<u32> = ids[row.clone()]
                .iter()
                .filter(|&&id| id >= 0)
                .map(|&id| id as u32)
                .collect();
            let want_values = &values[row][..want_ids.len()];
            let got_values: Vec<f32> = top.iter().map(|t| t.1).collect();
            assert_close(
                &format!("{label} top values"),
                &got_values,
                want_values,
                1e-4,
                0.0,
            );
            let got_ids: Vec<u32> = vector.top(Some(k)).into_iter().map(|t| t.0).collect();
            assert_ranked_equal(&format!("{label} top ids"), &got_ids, &want_ids, &ties);
            if let Some(entry) = entry {
                let want_tokens: Vec<String> = entry["top"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t[0].as_str().unwrap().to_string())
                    .collect();
                let got_tokens: Vec<String> = top.iter().map(|t| t.0.clone()).collect();
                assert_ranked_equal(
                    &format!("{label} top tokens"),
                    &got_tokens,
                    &want_tokens,
                    &ties,
                );
            }
        }
    }
}

#[test]
fn dot_similarity_matrix() {
    for case in Case::all("sparse") {
        let Some(check) = case.check("similarity") else {
            continue;
        };
        let names: Vec<&str> = match &check["inputs"] {
            Value::Array(list) => list.iter().map(|v| v.as_str().unwrap()).collect(),
            other => vec![other.as_str().unwrap(); 2],
        };
        let model = load(&case);
        let a = encode_all(&model, &case.texts(names[0]));
        let b = encode_all(&model, &case.texts(names[1]));
        let got = model.similarity_matrix(&a, &b).unwrap();
        let (dims, want) = case.array_f32(check["expected"]["values"].as_str().unwrap());
        assert_eq!((got.rows, got.cols), (dims[0], dims[1]), "{}", case.name());
        let (atol, rtol) = tolerances(check);
        assert_close(
            &format!("{} similarity", case.name()),
            &got.data,
            &want,
            atol,
            rtol,
        );
        for (i, x) in a.iter().enumerate() {
            for (j, y) in b.iter().enumerate() {
                assert_eq!(model.similarity(x, y).unwrap(), got.row(i)[j]);
            }
        }
    }
}

#[test]
fn pair_scores() {
    for case in Case::all("sparse") {
        let Some(check) = case.check("pairs") else {
            continue;
        };
        let model = load(&case);
        let vectors = encode_all(&model, &case.texts("texts"));
        let pairs = case.cases["inputs"][check["inputs"].as_str().unwrap()]
            .as_array()
            .unwrap();
        let got: Vec<f32> = pairs
            .iter()
            .map(|p| {
                let (q, d) = (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_u64().unwrap() as usize,
                );
                model.similarity(&vectors[q], &vectors[d]).unwrap()
            })
            .collect();
        let (_, want) = case.array_f32(check["expected"]["values"].as_str().unwrap());
        let (atol, rtol) = tolerances(check);
        assert_close(&format!("{} pairs", case.name()), &got, &want, atol, rtol);
    }
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    for case in Case::all("sparse") {
        let Some(check) = case.check("tokens") else {
            continue;
        };
        let model = load(&case);
        let texts = check_texts(&case, check);
        let ids = model.tokenize(&strs(&texts)).unwrap();
        let data = case.array_i64(check["expected"]["data"].as_str().unwrap());
        let offsets = case.array_i64(check["expected"]["offsets"].as_str().unwrap());
        for (i, (got, rows)) in ids.iter().zip(csr_rows(&offsets)).enumerate() {
            let want: Vec<u32> = data[rows].iter().map(|&v| v as u32).collect();
            assert_eq!(got, &want, "{} text {i}", case.name());
        }
    }
}

#[test]
fn vectors_are_positive_sorted_and_consistent() {
    for case in Case::all("sparse") {
        let model = load(&case);
        for (i, v) in encode_all(&model, &case.texts("texts")).iter().enumerate() {
            let label = format!("{} text {i}", case.name());
            assert_eq!(v.indices.len(), v.values.len(), "{label}");
            assert!(!v.is_empty(), "{label}: SPLADE vectors are never empty");
            assert!(
                v.values.iter().all(|&x| x > 0.0 && x.is_finite()),
                "{label}: values > 0"
            );
            assert!(
                v.indices.windows(2).all(|w| w[0] < w[1]),
                "{label}: ascending ids"
            );
            assert!(
                v.indices.iter().all(|&id| (id as usize) < v.vocab_size),
                "{label}"
            );
            let dense = v.to_dense();
            for (id, value) in v.iter() {
                assert_eq!(dense[id as usize], value, "{label}");
            }
            assert_eq!(
                dense.iter().filter(|&&x| x != 0.0).count(),
                v.len(),
                "{label}"
            );
            let sparsity = 1.0 - v.len() as f32 / v.vocab_size as f32;
            assert!((v.sparsity() - sparsity).abs() < 1e-6, "{label}");
            assert_eq!(&SparseVector::from_dense(&dense), v, "{label}");
        }
    }
}

#[test]
fn a_text_encodes_the_same_alone_and_in_a_batch() {
    for case in Case::all("sparse") {
        let model = load(&case);
        let texts = case.texts("texts");
        let batch = encode_all(&model, &texts);
        let small_batches = model
            .encode_batch(
                &strs(&texts),
                &EncodeOptions {
                    batch_size: Some(3),
                    show_progress: false,
                    ..EncodeOptions::default()
                },
            )
            .unwrap();
        for (i, text) in texts.iter().enumerate() {
            let label = format!("{} text {i}", case.name());
            let alone = model.encode(text).unwrap().to_dense();
            assert_close(&label, &alone, &batch[i].to_dense(), 1e-5, 0.0);
            assert_close(
                &label,
                &small_batches[i].to_dense(),
                &batch[i].to_dense(),
                1e-5,
                0.0,
            );
        }
        for edge in case.cases["edges"].as_array().into_iter().flatten() {
            if let (Some(i), Some(j)) = (edge["input"].as_u64(), edge["duplicate_of"].as_u64()) {
                assert_eq!(
                    batch[i as usize],
                    batch[j as usize],
                    "{}: duplicate {i} of {j}",
                    case.name()
                );
            }
        }
    }
}

#[test]
fn dot_is_symmetric_and_matches_dense() {
    for case in Case::all("sparse") {
        let model = load(&case);
        let vectors = encode_all(&model, &case.texts("texts"));
        let matrix = model.similarity_matrix(&vectors, &vectors).unwrap();
        for (i, a) in vectors.iter().enumerate() {
            for (j, b) in vectors.iter().enumerate() {
                assert_eq!(a.dot(b).unwrap(), b.dot(a).unwrap());
                assert_eq!(matrix.row(i)[j], matrix.row(j)[i]);
            }
            let dense = a.to_dense();
            let squares: f32 = dense.iter().map(|x| x * x).sum();
            assert!((a.dot(a).unwrap() - squares).abs() <= 1e-4 * squares.max(1.0));
        }
    }
}

#[test]
fn queries_and_documents_encode_like_plain_texts_without_prompts() {
    for case in Case::all("sparse") {
        let model = load(&case);
        let text = &case.texts("texts")[0];
        let plain = model.encode(text).unwrap();
        if model.query_prefix().is_none() {
            assert_eq!(model.encode_query(text).unwrap(), plain, "{}", case.name());
        }
        if model.document_prefix().is_none() {
            assert_eq!(
                model.encode_document(text).unwrap(),
                plain,
                "{}",
                case.name()
            );
        }
    }
}

#[test]
fn pruning_keeps_the_heaviest_terms() {
    for case in Case::all("sparse") {
        let full = load(&case);
        let texts = case.texts("texts");
        let reference = encode_all(&full, &texts);
        let k = 5;
        let top = SparseEmbedder::builder()
            .model(case.model_dir().to_string_lossy())
            .top_k(k)
            .build()
            .unwrap();
        assert_eq!(top.top_k(), Some(k));
        for (v, r) in encode_all(&top, &texts).iter().zip(&reference) {
            assert_eq!(v.len(), k.min(r.len()));
            assert!(v.indices.windows(2).all(|w| w[0] < w[1]));
            let mut want = r.top(Some(k));
            want.sort_by_key(|t| t.0);
            assert_eq!(v.iter().collect::<Vec<_>>(), want, "{}", case.name());
        }
        let floor = 0.5;
        let heavy = SparseEmbedder::builder()
            .model(case.model_dir().to_string_lossy())
            .min_weight(floor)
            .build()
            .unwrap();
        for (v, r) in encode_all(&heavy, &texts).iter().zip(&reference) {
            let want: Vec<(u32, f32)> = r.iter().filter(|t| t.1 >= floor).collect();
            assert_eq!(v.iter().collect::<Vec<_>>(), want, "{}", case.name());
        }
    }
}

#[test]
fn pruning_parameters_out_of_range_are_config_errors() {
    let bad = [
        SparseBuilder::new().model("x").top_k(0),
        SparseBuilder::new().model("x").min_weight(-0.1),
        SparseBuilder::new().model("x").min_weight(f32::NAN),
        SparseBuilder::new().model("x").min_weight(f32::INFINITY),
        SparseBuilder::new().model("x").batch_size(0),
        SparseBuilder::new().model("x").max_length(1),
    ];
    for builder in bad {
        assert!(
            matches!(builder.validate(), Err(TesseraError::Config(_))),
            "{builder:?}"
        );
        // build() refuses before it looks for the model.
        assert!(matches!(builder.build(), Err(TesseraError::Config(_))));
    }
    assert!(SparseBuilder::new()
        .top_k(1)
        .min_weight(0.0)
        .validate()
        .is_ok());
}

#[test]
fn vectors_of_different_vocabularies_do_not_compare() {
    let a = SparseVector::new(vec![3, 1], vec![0.5, 1.0], 10).unwrap();
    assert_eq!(a.indices, vec![1, 3]);
    let b = SparseVector::new(vec![1], vec![2.0], 20).unwrap();
    assert!(matches!(
        a.dot(&b),
        Err(TesseraError::DimensionMismatch { .. })
    ));
    assert!(SparseVector::new(vec![10], vec![1.0], 10).is_err());
    assert!(SparseVector::new(vec![1, 1], vec![1.0, 2.0], 10).is_err());
    assert!(SparseVector::new(vec![1], vec![], 10).is_err());
    let case = Case::all("sparse").remove(0);
    let model = load(&case);
    let v = model.encode("hello").unwrap();
    let stranger = SparseVector::new(vec![1], vec![1.0], v.vocab_size + 1).unwrap();
    assert!(matches!(
        model.similarity(&v, &stranger),
        Err(TesseraError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        model.similarity_matrix(std::slice::from_ref(&v), &[stranger]),
        Err(TesseraError::DimensionMismatch { .. })
    ));
    assert_eq!(model.tokens(&v, Some(0)), Vec::new());
    assert_eq!(model.tokens(&v, None).len(), v.len());
}

#[test]
fn unsupported_splade_pooling_is_a_load_error() {
    let case = Case::all("sparse").remove(0);
    let source = case.model_dir();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("1_SpladePooling")).unwrap();
    std::fs::write(
        dir.path().join("1_SpladePooling/config.json"),
        r#"{"pooling_strategy": "sum", "activation_function": "relu"}"#,
    )
    .unwrap();
    let result = SparseEmbedder::new(&dir.path().to_string_lossy());
    match result {
        Err(TesseraError::ModelLoad { reason, .. }) => assert!(reason.contains("sum"), "{reason}"),
        Err(other) => panic!("expected ModelLoad, got {other}"),
        Ok(_) => panic!("a sum-pooled SPLADE model must be refused"),
    }
}

#[test]
fn embedders_are_shareable_and_empty_batches_are_empty() {
    fn shareable<T: Send + Sync>() {}
    shareable::<SparseEmbedder>();
    shareable::<SparseVector>();
    let case = Case::all("sparse").remove(0);
    let model = load(&case);
    assert!(model
        .encode_batch(&[], &EncodeOptions::default())
        .unwrap()
        .is_empty());
    let none: [SparseVector; 0] = [];
    let matrix = model.similarity_matrix(&none, &none).unwrap();
    assert_eq!((matrix.rows, matrix.cols), (0, 0));
}

/// SPLADE heads of other encoder families (XLM-RoBERTa's `lm_head`, ModernBERT's
/// `head` + `decoder`) against sentence-transformers' SparseEncoder on the same
/// checkpoints (`tests/fixtures/splade_families/make_fixtures.py`).
#[test]
fn splade_heads_of_other_families_match_sparse_encoder() {
    let cases = Case::all_in(&common::fixtures().join("splade_families"));
    assert_eq!(cases.len(), 2);
    for case in cases {
        let model = SparseEmbedder::builder()
            .model(case.dir.join("model").to_string_lossy())
            .build()
            .unwrap();
        let texts = case.texts("texts");
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let got = model
            .encode_batch(&refs, &EncodeOptions::default())
            .unwrap();
        let (dims, want) = case.array_f32("embeddings");
        assert_eq!(got.len(), dims[0]);
        for (i, vector) in got.iter().enumerate() {
            let mut dense = vec![0f32; dims[1]];
            for (&index, &value) in vector.indices.iter().zip(&vector.values) {
                dense[index as usize] = value;
            }
            assert_close(
                &format!("{} text {i}", case.name()),
                &dense,
                &want[i * dims[1]..(i + 1) * dims[1]],
                1e-4,
                1e-4,
            );
        }
    }
}
