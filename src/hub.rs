//! Model resolution: a local directory, the Hugging Face cache, or a download into that
//! cache (`download.rs`). Everything ends as one local directory laid out like the
//! repository.

mod download;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::{Cache, Repo, RepoType};

use download::{Downloader, Failure, Outcome};

use crate::error::{Result, TesseraError};
use crate::registry::{self, ModelSpec};

/// Files a checkpoint may carry beside its weights; absent ones are simply skipped.
const METADATA_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "artifact.metadata",
    "preprocessor_config.json",
    "processor_config.json",
    "model.safetensors.index.json",
];

/// A model's files on local disk, and the registry entry if it has one.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// What the user asked for (registry id, repo id or path), echoed by `model()`.
    pub name: String,
    pub dir: PathBuf,
    pub spec: Option<&'static ModelSpec>,
}

/// How to reach the hub; `from_env` reads the variables huggingface_hub reads.
#[derive(Clone, Default)]
pub struct HubOptions {
    pub revision: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub token: Option<String>,
    pub offline: bool,
    /// Connect and per-read timeout of downloads (`HF_HUB_DOWNLOAD_TIMEOUT`, seconds;
    /// 10 by default, as huggingface_hub).
    pub timeout: Option<Duration>,
}

/// Redacts the token: options are printed in builder reprs and error messages.
impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("revision", &self.revision)
            .field("cache_dir", &self.cache_dir)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Serde for a builder's hub options: only the revision travels; the rest (endpoint,
/// cache, token) is read from the environment where the builder is rebuilt, so a
/// pickled embedder never carries a token.
pub mod revision_only {
    use super::HubOptions;

    pub fn serialize<S: serde::Serializer>(hub: &HubOptions, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&hub.revision, s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HubOptions, D::Error> {
        let revision: Option<String> = serde::Deserialize::deserialize(d)?;
        Ok(HubOptions {
            revision,
            ..HubOptions::from_env()
        })
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl HubOptions {
    pub fn from_env() -> Self {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let cache_dir = env("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| env("HF_HOME").map(|home| PathBuf::from(home).join("hub")));
        let offline = env("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false);
        HubOptions {
            revision: None,
            cache_dir,
            endpoint: env("HF_ENDPOINT"),
            token: env("HF_TOKEN").or_else(|| env("HUGGING_FACE_HUB_TOKEN")),
            offline,
            timeout: env("HF_HUB_DOWNLOAD_TIMEOUT")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64),
        }
    }

    fn cache(&self) -> Cache {
        match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone()),
            None => Cache::from_env(),
        }
    }
}

/// Resolves a registry id, a Hugging Face repo id or a local directory.
pub fn resolve(model: &str, options: &HubOptions) -> Result<ModelSource> {
    let trimmed = model.trim();
    let path = Path::new(trimmed);
    if path.is_dir() {
        return Ok(ModelSource {
            name: trimmed.to_string(),
            dir: path.to_path_buf(),
            spec: None,
        });
    }
    if looks_like_path(trimmed) || path.exists() {
        return Err(TesseraError::ModelNotFound {
            requested: format!("{trimmed} (no such model directory)"),
            suggestions: Vec::new(),
        });
    }
    let spec = registry::find(trimmed);
    if let Some(spec) = spec.filter(|s| !s.supported) {
        return Err(TesseraError::load(
            &spec.id,
            format!(
                "the '{}' architecture ({} paradigm) is not implemented in this version of \
                 tessera yet; supported models are listed by tessera.list_models()",
                spec.architecture, spec.paradigm
            ),
        ));
    }
    let repo_id = match spec {
        Some(spec) => spec.huggingface_id.clone(),
        None if is_repo_id(trimmed) => trimmed.to_string(),
        None => {
            return Err(TesseraError::ModelNotFound {
                requested: trimmed.to_string(),
                suggestions: registry::suggestions(trimmed),
            })
        }
    };
    let dir = fetch_repo(&repo_id, options)?;
    Ok(ModelSource {
        name: trimmed.to_string(),
        dir,
        spec,
    })
}

fn looks_like_path(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('/')
        || name.starts_with('~')
        || name.contains('\\')
        || name.matches('/').count() > 1
}

fn is_repo_id(name: &str) -> bool {
    let mut parts = name.split('/');
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!((parts.next(), parts.next(), parts.next()), (Some(owner), Some(name), None) if valid(owner) && valid(name))
}

/// Downloads (or finds in the cache) every file the model needs and returns the
/// snapshot directory that holds them.
fn fetch_repo(repo_id: &str, options: &HubOptions) -> Result<PathBuf> {
    let revision = options
        .revision
        .clone()
        .unwrap_or_else(|| "main".to_string());
    check_revision(&revision)?;
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.clone());
    let fetcher = Fetcher::new(repo_id, repo, options)?;

    let config = fetcher.required("config.json")?;
    for file in METADATA_FILES {
        fetcher.optional(file)?;
    }
    let weights = if fetcher.optional("model.safetensors.index.json")?.is_some() {
        crate::models::checkpoint::shard_names(
            &config.with_file_name("model.safetensors.index.json"),
        )?
    } else {
        vec!["model.safetensors".to_string()]
    };
    for file in &weights {
        fetcher.required(file)?;
    }
    // Files of the sentence-transformers modules that live in their own folders
    // (pooling, ColBERT projections, SPLADE pooling), whatever their index.
    for folder in module_folders(&config.with_file_name("modules.json")) {
        fetcher.optional(&format!("{folder}/config.json"))?;
        fetcher.optional(&format!("{folder}/model.safetensors"))?;
    }
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| TesseraError::load(repo_id, "cache path has no parent directory"))
}

/// A revision is a branch, a tag, a commit or `refs/pr/N`: never a path that could lead
/// out of the repository's cache folder.
fn check_revision(revision: &str) -> Result<()> {
    let bad = revision.is_empty()
        || revision.starts_with('/')
        || revision.contains('\\')
        || revision.contains('\0')
        || revision
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(TesseraError::Config(format!(
            "revision '{revision}' is not a branch, tag or commit of the repository"
        )));
    }
    Ok(())
}

/// The folders `modules.json` names (empty when there is no such file).
fn module_folders(modules_path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(modules_path) else {
        return Vec::new();
    };
    let modules: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
    modules
        .iter()
        .filter_map(|m| m.get("path").and_then(|p| p.as_str()))
        .filter(|p| !p.is_empty() && !p.contains(".."))
        .map(str::to_string)
        .collect()
}

/// One repository at one revision: cache first, then the network unless offline. Once
/// the hub proves unreachable, the rest is served from the cache alone.
struct Fetcher {
    repo_id: String,
    revision: String,
    cache: Cache,
    repo: Repo,
    downloader: Option<Downloader>,
    unreachable: RefCell<Option<String>>,
}

impl Fetcher {
    fn new(repo_id: &str, repo: Repo, options: &HubOptions) -> Result<Self> {
        let cache = options.cache();
        let downloader = (!options.offline).then(|| {
            Downloader::new(
                options
                    .endpoint
                    .as_deref()
                    .unwrap_or("https://huggingface.co"),
                options.token.clone().or_else(|| cache.token()),
                options.timeout.unwrap_or(DEFAULT_TIMEOUT),
            )
        });
        Ok(Fetcher {
            repo_id: repo_id.to_string(),
            revision: repo.revision().to_string(),
            cache,
            repo,
            downloader,
            unreachable: RefCell::new(None),
        })
    }

    fn required(&self, file: &str) -> Result<PathBuf> {
        self.optional(file)?.ok_or_else(|| {
            let reason = if self.downloader.is_none() {
                format!(
                    "'{file}' is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set; \
                     download the model once with network access or pass a local directory",
                    self.cache.path().display()
                )
            } else if let Some(why) = self.unreachable.borrow().as_ref() {
                format!(
                    "the hub cannot be reached ({why}) and '{file}' at revision '{}' is not in \
                     the cache at {}",
                    self.revision,
                    self.cache.path().display()
                )
            } else {
                format!("the repository has no '{file}' (only safetensors weights are supported)")
            };
            TesseraError::load(&self.repo_id, reason)
        })
    }

    fn optional(&self, file: &str) -> Result<Option<PathBuf>> {
        if let Some(path) = self.cached(file) {
            return Ok(Some(path));
        }
        let Some(downloader) = &self.downloader else {
            return Ok(None);
        };
        if self.unreachable.borrow().is_some() {
            return Ok(None);
        }
        match downloader.fetch(&self.repo_id, &self.revision, file, &self.repo_dir()) {
            Ok(Outcome::Stored(path)) => Ok(Some(path)),
            Ok(Outcome::Missing { commit }) => {
                self.remember_missing(file, commit);
                Ok(None)
            }
            Err(Failure::Unreachable(why)) => {
                eprintln!(
                    "tessera: the Hugging Face hub is unreachable ({why}); looking for '{}' \
                     in the cache only",
                    self.repo_id
                );
                *self.unreachable.borrow_mut() = Some(why);
                Ok(None)
            }
            Err(Failure::Refused(err)) => Err(err),
        }
    }

    /// Cache lookup by branch/tag ref, or directly by snapshot when the revision is a
    /// commit hash (refs only exist for names).
    fn cached(&self, file: &str) -> Option<PathBuf> {
        if let Some(path) = self.cache.repo(self.repo.clone()).get(file) {
            return Some(path);
        }
        let snapshot = self.repo_dir().join("snapshots").join(&self.revision);
        let path = snapshot.join(file);
        path.exists().then_some(path)
    }

    /// Records a file the repository lacks under `.no_exist/<commit>/`, as huggingface_hub
    /// does. It is never trusted over a live server (a later request may find the file).
    fn remember_missing(&self, file: &str, commit: Option<String>) {
        let dir = self.repo_dir();
        let commit = commit.or_else(|| {
            std::fs::read_to_string(dir.join("refs").join(&self.revision))
                .ok()
                .map(|c| c.trim().to_string())
        });
        let Some(commit) = commit.filter(|c| !c.contains('/') && !c.contains("..")) else {
            return;
        };
        // Best effort: without the marker, huggingface_hub just asks the server again.
        let _ = download::write_atomic(&dir.join(".no_exist").join(commit).join(file), b"");
    }

    fn repo_dir(&self) -> PathBuf {
        self.cache.path().join(self.repo.folder_name())
    }
}
