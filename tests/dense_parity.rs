//! Dense embeddings against sentence-transformers' outputs in the golden data.

mod common;

use common::{assert_close, tolerances, Case};
use tessera::{DenseEmbedder, EncodeOptions};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn load(case: &Case) -> DenseEmbedder {
    DenseEmbedder::builder()
        .model(case.model_dir().to_string_lossy())
        .build()
        .unwrap()
}

#[test]
fn embeddings_match_sentence_transformers() {
    for case in Case::all("dense") {
        let model = load(&case);
        let texts = case.texts("texts");
        let got = model
            .encode_batch(&strs(&texts), &EncodeOptions::default())
            .unwrap();
        let check = case.check("embeddings").unwrap();
        let (atol, rtol) = tolerances(check);
        let (dims, want) = case.array_f32("embeddings");
        assert_eq!((got.rows, got.cols), (dims[0], dims[1]), "{}", case.name());
        assert_close(
            &format!("{} embeddings", case.name()),
            &got.data,
            &want,
            atol,
            rtol,
        );
    }
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    for case in Case::all("dense") {
        let model = load(&case);
        let texts = case.texts("texts");
        let ids = model.tokenize(&strs(&texts)).unwrap();
        let data = case.array_i64("tokens.input_ids.data");
        let offsets = case.array_i64("tokens.input_ids.offsets");
        for (i, got) in ids.iter().enumerate() {
            let want: Vec<u32> = data[offsets[i] as usize..offsets[i + 1] as usize]
                .iter()
                .map(|&v| v as u32)
                .collect();
            assert_eq!(got, &want, "{} text {i}", case.name());
        }
    }
}

#[test]
fn matryoshka_truncation_renormalises() {
    for case in Case::all("dense") {
        let Some(check) = case.check("truncate_16_normalized") else {
            continue;
        };
        let dim = check["options"]["truncate_dim"].as_u64().unwrap() as usize;
        let model = DenseEmbedder::builder()
            .model(case.model_dir().to_string_lossy())
            .dimension(dim)
            .build()
            .unwrap();
        assert_eq!(model.dimension(), dim);
        let texts = case.texts("texts");
        let got = model
            .encode_batch(&strs(&texts), &EncodeOptions::default())
            .unwrap();
        let (atol, rtol) = tolerances(check);
        let (_, want) = case.array_f32("truncate_16_normalized");
        assert_close(
            &format!("{} truncate", case.name()),
            &got.data,
            &want,
            atol,
            rtol,
        );
    }
}

#[test]
fn explicit_normalisation_of_a_model_without_normalize() {
    for case in Case::all("dense") {
        let Some(check) = case.check("embeddings_normalized") else {
            continue;
        };
        let model = DenseEmbedder::builder()
            .model(case.model_dir().to_string_lossy())
            .normalize(true)
            .build()
            .unwrap();
        let texts = case.texts("texts");
        let got = model
            .encode_batch(&strs(&texts), &EncodeOptions::default())
            .unwrap();
        let (atol, rtol) = tolerances(check);
        let (_, want) = case.array_f32("embeddings_normalized");
        assert_close(
            &format!("{} normalized", case.name()),
            &got.data,
            &want,
            atol,
            rtol,
        );
    }
}

#[test]
fn cosine_similarity_matrix() {
    for case in Case::all("dense") {
        let check = case.check("similarity").unwrap();
        let Some([first, second]) = check["inputs"].as_array().map(Vec::as_slice) else {
            continue; // a similarity over one list (the real model's case): covered in Python
        };
        let model = load(&case);
        let (a, b) = (
            case.texts(first.as_str().unwrap()),
            case.texts(second.as_str().unwrap()),
        );
        let (dims, want) = case.array_f32("similarity");
        let mut got = Vec::new();
        for x in &a {
            for y in &b {
                got.push(model.similarity(x, y).unwrap());
            }
        }
        assert_eq!(got.len(), dims[0] * dims[1]);
        let (atol, rtol) = tolerances(check);
        assert_close(
            &format!("{} similarity", case.name()),
            &got,
            &want,
            atol,
            rtol,
        );
    }
}

#[test]
fn a_text_encodes_the_same_alone_and_in_a_batch() {
    for case in Case::all("dense") {
        let model = load(&case);
        let texts = case.texts("texts");
        let batch = model
            .encode_batch(&strs(&texts), &EncodeOptions::default())
            .unwrap();
        for (i, text) in texts.iter().enumerate() {
            let alone = model.encode(text).unwrap();
            assert_close(
                &format!("{} text {i}", case.name()),
                &alone,
                batch.row(i),
                1e-5,
                0.0,
            );
        }
    }
}
