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

/// The token ids of a check's inputs, one row per text.
fn expected_ids(case: &Case, key: &str, count: usize) -> Vec<Vec<u32>> {
    let data = case.array_i64(&format!("{key}.input_ids.data"));
    let offsets = case.array_i64(&format!("{key}.input_ids.offsets"));
    (0..count)
        .map(|i| {
            data[offsets[i] as usize..offsets[i + 1] as usize]
                .iter()
                .map(|&v| v as u32)
                .collect()
        })
        .collect()
}

#[test]
fn query_and_document_sides_use_the_models_prompts() {
    for case in Case::all("dense") {
        let Some(query_check) = case.check("query_embeddings") else {
            continue;
        };
        let queries = case.texts("queries");
        let documents = case.texts("documents");
        let recorded = |check: &str| {
            case.check(check).unwrap()["options"]["prompt"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (query_prompt, document_prompt) = (
            recorded("query_embeddings"),
            recorded("document_embeddings"),
        );
        // The prompts the model's own files define, and the same strings passed explicitly.
        let from_files = load(&case);
        let explicit = DenseEmbedder::builder()
            .model(case.model_dir().to_string_lossy())
            .query_prefix(query_prompt.clone())
            .document_prefix(document_prompt.clone())
            .build()
            .unwrap();
        assert_eq!(
            from_files.query_prefix().unwrap_or(""),
            query_prompt,
            "{}",
            case.name()
        );
        assert_eq!(
            from_files.document_prefix().unwrap_or(""),
            document_prompt,
            "{}",
            case.name()
        );
        let (atol, rtol) = tolerances(query_check);
        for model in [&from_files, &explicit] {
            let q = model
                .encode_queries(&strs(&queries), &EncodeOptions::default())
                .unwrap();
            let d = model
                .encode_documents(&strs(&documents), &EncodeOptions::default())
                .unwrap();
            let (_, want_q) = case.array_f32("query_embeddings");
            let (_, want_d) = case.array_f32("document_embeddings");
            assert_close(
                &format!("{} queries", case.name()),
                &q.data,
                &want_q,
                atol,
                rtol,
            );
            assert_close(
                &format!("{} documents", case.name()),
                &d.data,
                &want_d,
                atol,
                rtol,
            );
            let mut cosines = Vec::new();
            for i in 0..q.rows {
                for j in 0..d.rows {
                    cosines.push(tessera::similarity::cosine(q.row(i), d.row(j)).unwrap());
                }
            }
            let (_, want) = case.array_f32("query_document_similarity");
            assert_close(
                &format!("{} q/d cosine", case.name()),
                &cosines,
                &want,
                atol,
                rtol,
            );
        }
        // Prompt + text token ids: truncation cuts the text, never the prompt.
        for (key, texts, prompt) in [
            ("query_tokens", &queries, &query_prompt),
            ("document_tokens", &documents, &document_prompt),
        ] {
            let joined: Vec<String> = texts.iter().map(|t| format!("{prompt}{t}")).collect();
            let got = from_files.tokenize(&strs(&joined)).unwrap();
            assert_eq!(
                got,
                expected_ids(&case, key, texts.len()),
                "{} {key}",
                case.name()
            );
        }
    }
}

#[test]
fn matryoshka_without_renormalising_is_the_cut_pipeline_output() {
    for case in Case::all("dense") {
        let Some(check) = case.check("truncate_16") else {
            continue;
        };
        let model = DenseEmbedder::builder()
            .model(case.model_dir().to_string_lossy())
            .dimension(16)
            .normalize(false)
            .build()
            .unwrap();
        let texts = case.texts("texts");
        let got = model
            .encode_batch(&strs(&texts), &EncodeOptions::default())
            .unwrap();
        let (atol, rtol) = tolerances(check);
        let (_, want) = case.array_f32("truncate_16");
        assert_close(
            &format!("{} truncate_16", case.name()),
            &got.data,
            &want,
            atol,
            rtol,
        );
    }
}
