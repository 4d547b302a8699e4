//! The metadata files of a model directory: Hugging Face `config.json` and the
//! sentence-transformers module files (`modules.json`, `1_Pooling/config.json`, ...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Result, TesseraError};
use crate::registry::PoolingKind;

/// Reads and parses a JSON file, naming the file in every error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TesseraError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| TesseraError::load(path.display().to_string(), format!("invalid JSON: {e}")))
}

/// Reads a JSON file if it exists.
pub fn read_optional_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// One entry of `modules.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModuleEntry {
    #[serde(default)]
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl ModuleEntry {
    /// The class name without its Python module path.
    pub fn class_name(&self) -> &str {
        self.kind.rsplit('.').next().unwrap_or(&self.kind)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SentenceBertConfig {
    #[serde(default)]
    pub max_seq_length: Option<usize>,
    #[serde(default)]
    pub do_lower_case: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PoolingConfig {
    #[serde(default)]
    pub pooling_mode_cls_token: bool,
    #[serde(default)]
    pub pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pub pooling_mode_max_tokens: bool,
    #[serde(default)]
    pub pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pub pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pub pooling_mode_lasttoken: bool,
}

impl PoolingConfig {
    pub fn kind(&self, path: &Path) -> Result<PoolingKind> {
        let unsupported = [
            (self.pooling_mode_max_tokens, "max_tokens"),
            (
                self.pooling_mode_mean_sqrt_len_tokens,
                "mean_sqrt_len_tokens",
            ),
            (self.pooling_mode_weightedmean_tokens, "weightedmean_tokens"),
        ];
        if let Some((_, name)) = unsupported.iter().find(|(on, _)| *on) {
            return Err(TesseraError::load(
                path.display().to_string(),
                format!("pooling mode '{name}' is not supported (cls, mean and lasttoken are)"),
            ));
        }
        let chosen: Vec<PoolingKind> = [
            (self.pooling_mode_cls_token, PoolingKind::Cls),
            (self.pooling_mode_mean_tokens, PoolingKind::Mean),
            (self.pooling_mode_lasttoken, PoolingKind::Last),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect();
        match chosen.as_slice() {
            [one] => Ok(*one),
            _ => Err(TesseraError::load(
                path.display().to_string(),
                "exactly one pooling mode must be enabled (concatenated poolings are not supported)",
            )),
        }
    }
}

/// The sentence-transformers view of a model directory (all parts optional).
#[derive(Debug, Clone, Default)]
pub struct SentenceTransformersLayout {
    pub modules: Vec<ModuleEntry>,
    pub sentence_bert: SentenceBertConfig,
    /// `config_sentence_transformers.json` as raw JSON; paradigms read their own keys.
    pub st_config: serde_json::Value,
    /// `tokenizer_config.json`'s `model_max_length`, where sentence-transformers 6 keeps
    /// the sequence length it saves.
    pub tokenizer_max_length: Option<usize>,
}

impl SentenceTransformersLayout {
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(SentenceTransformersLayout {
            modules: read_optional_json(&dir.join("modules.json"))?.unwrap_or_default(),
            sentence_bert: read_optional_json(&dir.join("sentence_bert_config.json"))?
                .unwrap_or_default(),
            st_config: read_optional_json(&dir.join("config_sentence_transformers.json"))?
                .unwrap_or(serde_json::Value::Null),
            tokenizer_max_length: read_optional_json::<serde_json::Value>(
                &dir.join("tokenizer_config.json"),
            )?
            .and_then(|c| c.get("model_max_length").and_then(|v| v.as_f64()))
            .filter(|n| *n >= 1.0)
            .map(|n| n.min(usize::MAX as f64) as usize),
        })
    }

    /// The sequence length sentence-transformers uses: `max_seq_length` of
    /// `sentence_bert_config.json`, else the tokenizer's `model_max_length` (the caller
    /// caps either at the model's positions, as sentence-transformers does).
    pub fn max_seq_length(&self) -> Option<usize> {
        self.sentence_bert
            .max_seq_length
            .or(self.tokenizer_max_length)
    }

    /// The first module of a class (e.g. `Pooling`, `Normalize`, `Dense`).
    pub fn module(&self, class: &str) -> Option<&ModuleEntry> {
        self.modules.iter().find(|m| m.class_name() == class)
    }

    /// Folder of a module, relative to the model directory.
    pub fn module_dir(&self, dir: &Path, class: &str) -> Option<PathBuf> {
        self.module(class).map(|m| dir.join(&m.path))
    }

    /// Every named prompt of `config_sentence_transformers.json` (`prompt_name=`).
    pub fn prompts(&self) -> BTreeMap<String, String> {
        self.st_config
            .get("prompts")
            .and_then(|p| p.as_object())
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The model's own prompt for one side, from `config_sentence_transformers.json`,
    /// under the names models use for it (`query` / `search_query`, `document` /
    /// `search_document` / `passage`). `Some("")` when the file sets it empty on purpose.
    pub fn side_prompt(&self, side: PromptSide) -> Option<String> {
        let names: &[&str] = match side {
            PromptSide::Query => &["query", "search_query"],
            PromptSide::Document => &["document", "search_document", "passage"],
        };
        let prompts = self.st_config.get("prompts")?;
        names
            .iter()
            .find_map(|name| prompts.get(name).and_then(|p| p.as_str()))
            .map(str::to_string)
    }

    /// The prefix a side gets: the caller's, else the model's own prompt, else the
    /// registry's; an empty string means none.
    pub fn resolve_prompt(
        &self,
        own: &Option<String>,
        registry: Option<&String>,
        side: PromptSide,
    ) -> Option<String> {
        own.clone()
            .or_else(|| self.side_prompt(side))
            .or_else(|| registry.cloned())
            .filter(|p| !p.is_empty())
    }
}

/// Which side of retrieval a prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptSide {
    Query,
    Document,
}

/// A prompt by the name the model gives it, or a `Config` error listing the names.
pub fn named_prompt<'a>(prompts: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str> {
    prompts.get(name).map(String::as_str).ok_or_else(|| {
        TesseraError::Config(format!(
            "the model has no prompt named '{name}'; it has: {}",
            if prompts.is_empty() {
                "none".to_string()
            } else {
                prompts.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        ))
    })
}
