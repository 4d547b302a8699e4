//! The registry: every SPEC id present, lookups, suggestions, and that entries marked
//! runnable use an architecture this build implements.

use tessera::models::TEXT_MODEL_TYPES;
use tessera::registry::{self, Paradigm};
use tessera::TesseraError;

const SPEC_IDS: &[(&str, Paradigm)] = &[
    ("bge-small-en-v1.5", Paradigm::Dense),
    ("bge-base-en-v1.5", Paradigm::Dense),
    ("bge-large-en-v1.5", Paradigm::Dense),
    ("all-minilm-l6-v2", Paradigm::Dense),
    ("nomic-embed-text-v1.5", Paradigm::Dense),
    ("gte-large-en-v1.5", Paradigm::Dense),
    ("snowflake-arctic-embed-l-v2.0", Paradigm::Dense),
    ("jina-embeddings-v2-base-en", Paradigm::Dense),
    ("jina-embeddings-v3", Paradigm::Dense),
    ("bge-m3", Paradigm::Dense),
    ("multilingual-e5-large", Paradigm::Dense),
    ("gte-multilingual-base", Paradigm::Dense),
    ("modernbert-embed-base", Paradigm::Dense),
    ("snowflake-arctic-embed-m-v2.0", Paradigm::Dense),
    ("qwen3-embedding-0.6b", Paradigm::Dense),
    ("embeddinggemma-300m", Paradigm::Dense),
    ("colbert-v2", Paradigm::Multivector),
    ("colbert-small", Paradigm::Multivector),
    ("jina-colbert-v2", Paradigm::Multivector),
    ("gte-modern-colbert", Paradigm::Multivector),
    ("splade-pp-en-v1", Paradigm::Sparse),
    ("splade-pp-en-v2", Paradigm::Sparse),
    ("splade-cocondenser", Paradigm::Sparse),
    ("splade-v3", Paradigm::Sparse),
    ("colpali-v1.3-hf", Paradigm::Vision),
    ("colpali-v1.2", Paradigm::Vision),
    ("chronos-bolt-tiny", Paradigm::Timeseries),
    ("chronos-bolt-mini", Paradigm::Timeseries),
    ("chronos-bolt-small", Paradigm::Timeseries),
    ("chronos-bolt-base", Paradigm::Timeseries),
];

#[test]
fn every_spec_id_is_registered_with_its_paradigm() {
    for (id, paradigm) in SPEC_IDS {
        let spec = registry::find(id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(spec.paradigm, *paradigm, "{id}");
        assert!(!spec.huggingface_id.is_empty() && spec.huggingface_id.contains('/'));
        assert!(!spec.license.is_empty() && !spec.description.is_empty());
    }
    let ids: std::collections::HashSet<_> = registry::all_models().iter().map(|m| &m.id).collect();
    assert_eq!(ids.len(), registry::all_models().len(), "duplicate ids");
}

#[test]
fn runnable_entries_use_implemented_architectures() {
    let implemented = |p: Paradigm, arch: &str| match p {
        Paradigm::Dense | Paradigm::Multivector => TEXT_MODEL_TYPES.contains(&arch),
        // The SPLADE head is BERT's masked-LM head.
        Paradigm::Sparse => arch == "bert",
        Paradigm::Timeseries => arch == "t5-chronos-bolt",
        Paradigm::Vision => arch == "paligemma",
    };
    for spec in registry::all_models() {
        assert_eq!(
            spec.supported,
            implemented(spec.paradigm, &spec.architecture),
            "{}: 'supported' disagrees with the code",
            spec.id
        );
    }
}

#[test]
fn lookups_by_id_and_repo_ignore_case() {
    let by_id = registry::find("BGE-Small-EN-v1.5").unwrap();
    let by_repo = registry::find("baai/bge-small-en-v1.5").unwrap();
    assert_eq!(by_id.id, by_repo.id);
    assert!(registry::find("no-such-model").is_none());
    assert_eq!(registry::list_models(Some(Paradigm::Sparse)).len(), 4);
    assert_eq!(
        registry::list_models(None).len(),
        registry::all_models().len()
    );
}

#[test]
fn suggestions_name_close_ids() {
    let close = registry::suggestions("bge-smal-en");
    assert_eq!(close.first().map(String::as_str), Some("bge-small-en-v1.5"));
    assert!(registry::suggestions("zzzzzzzzzzzz").is_empty());
}

#[test]
fn matryoshka_dimensions_are_checked() {
    let nomic = registry::find("nomic-embed-text-v1.5").unwrap();
    assert!(nomic.check_dimension(256).is_ok() && nomic.check_dimension(768).is_ok());
    match nomic.check_dimension(100) {
        Err(TesseraError::UnsupportedDimension { supported, .. }) => {
            assert_eq!(supported, vec![64, 128, 256, 512, 768])
        }
        other => panic!("{other:?}"),
    }
    let minilm = registry::find("all-minilm-l6-v2").unwrap();
    assert!(minilm.check_dimension(384).is_ok() && minilm.check_dimension(128).is_err());
}

#[test]
fn unsupported_entries_refuse_with_the_missing_architecture() {
    let err = tessera::DenseEmbedder::new("jina-embeddings-v2-base-en")
        .err()
        .unwrap();
    match err {
        TesseraError::ModelLoad { reason, .. } => {
            assert!(reason.contains("jina-bert"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
