//! Downloads from the Hugging Face hub into its cache layout, safely.
//!
//! A file is requested at `{endpoint}/{repo}/resolve/{revision}/{file}` (redirects
//! followed by hand, so the first response's `X-Repo-Commit`, `X-Linked-Etag` and
//! `X-Linked-Size` are kept), streamed into `blobs/<etag>.incomplete` with connect and
//! per-read timeouts and a cancellation check between chunks, verified (size; SHA-256
//! for LFS files, the git blob SHA-1 for others; no HTML page where data was asked for),
//! and only then renamed into `blobs/` and linked from `snapshots/<commit>/`. A failed
//! or interrupted download leaves nothing behind that a later load would trust.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::{Result, TesseraError};

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// Bytes read at a time.
const CHUNK: usize = 1 << 20;
/// How often a waiting download checks for cancellation.
const WATCH_INTERVAL: Duration = Duration::from_millis(50);

/// What the server said about one file.
pub enum Outcome {
    /// Verified and in the cache, at this snapshot path.
    Stored(PathBuf),
    /// The repository has no such file at this revision (404).
    Missing { commit: Option<String> },
}

pub struct Downloader {
    agent: ureq::Agent,
    endpoint: String,
    token: Option<String>,
}

/// Why a request failed: the hub could not be reached (the cache may still serve), or
/// it answered in a way that is an error whatever the cache holds.
pub enum Failure {
    Unreachable(String),
    Refused(TesseraError),
}

impl From<TesseraError> for Failure {
    fn from(err: TesseraError) -> Self {
        Failure::Refused(err)
    }
}

impl Downloader {
    pub fn new(endpoint: &str, token: Option<String>, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Downloader {
            agent,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Fetches `file` of `repo_id` at `revision` into `repo_dir` (the cache folder of
    /// the repository).
    pub fn fetch(
        &self,
        repo_id: &str,
        revision: &str,
        file: &str,
        repo_dir: &Path,
    ) -> std::result::Result<Outcome, Failure> {
        let mut url = format!(
            "{}/{repo_id}/resolve/{}/{file}",
            self.endpoint,
            encode_revision(revision)
        );
        let mut first: Option<Headers> = None;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.get(&url);
            if let Some(token) = &self.token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            let response = request.call().map_err(|e| unreachable(&url, &e))?;
            let status = response.status().as_u16();
            let headers = Headers::of(&response);
            if (300..400).contains(&status) {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        refused(
                            repo_id,
                            format!(
                                "the hub redirected '{file}' (HTTP {status}) without a Location"
                            ),
                        )
                    })?;
                url = join_url(&url, location);
                first.get_or_insert(headers);
                continue;
            }
            let meta = first.take().unwrap_or_default().or(headers.clone());
            return match status {
                200 => self.store(repo_id, revision, file, repo_dir, response, &meta),
                404 => Ok(Outcome::Missing {
                    commit: meta.commit.clone(),
                }),
                401 | 403 => Err(refused(
                    repo_id,
                    format!(
                        "access to '{file}' was denied (HTTP {status}): the repository may be \
                         gated or private; set HF_TOKEN to a token that can read it"
                    ),
                )),
                _ => Err(Failure::Unreachable(format!("HTTP {status} for {url}"))),
            };
        }
        Err(refused(repo_id, format!("too many redirects for '{file}'")))
    }

    fn store(
        &self,
        repo_id: &str,
        revision: &str,
        file: &str,
        repo_dir: &Path,
        response: ureq::http::Response<ureq::Body>,
        meta: &Headers,
    ) -> std::result::Result<Outcome, Failure> {
        let commit = meta.commit.clone().unwrap_or_else(|| revision.to_string());
        if !is_safe_name(&commit) {
            return Err(refused(
                repo_id,
                format!("the hub named an invalid commit '{commit}'"),
            ));
        }
        if meta.html && !file.ends_with(".html") {
            return Err(refused(
                repo_id,
                format!("the hub answered '{file}' with an HTML page, not the file (a proxy or login page?)"),
            ));
        }
        let blobs = repo_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| TesseraError::io(&blobs, e))?;
        let etag = meta.etag.clone().filter(|e| is_safe_name(e));
        let partial = blobs.join(format!(
            "{}.{}.incomplete",
            etag.as_deref().unwrap_or("download"),
            std::process::id()
        ));
        let digest = match transfer(response, &partial, file, meta) {
            Ok(digest) => digest,
            Err(err) => {
                let _ = std::fs::remove_file(&partial);
                return Err(match err {
                    CopyError::Read(reason) => Failure::Unreachable(reason),
                    CopyError::Invalid(reason) => refused(
                        repo_id,
                        format!("the download of '{file}' {reason}; nothing was cached"),
                    ),
                    CopyError::Local(e) => Failure::Refused(e),
                });
            }
        };
        let blob = blobs.join(etag.unwrap_or(digest.hex));
        std::fs::rename(&partial, &blob).map_err(|e| TesseraError::io(&blob, e))?;
        let snapshot = repo_dir.join("snapshots").join(&commit).join(file);
        link(&blob, &snapshot)?;
        if revision != commit {
            let reference = repo_dir.join("refs").join(revision);
            write_atomic(&reference, commit.as_bytes())?;
        }
        Ok(Outcome::Stored(snapshot))
    }
}

fn unreachable(url: &str, err: &ureq::Error) -> Failure {
    Failure::Unreachable(format!("{url}: {err}"))
}

fn refused(repo_id: &str, reason: String) -> Failure {
    Failure::Refused(TesseraError::load(repo_id, reason))
}

/// The response headers that matter, from the first response of a redirect chain.
#[derive(Clone, Default)]
struct Headers {
    commit: Option<String>,
    etag: Option<String>,
    size: Option<u64>,
    html: bool,
}

impl Headers {
    fn of(response: &ureq::http::Response<ureq::Body>) -> Self {
        let get = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let clean = |tag: String| tag.trim_start_matches("W/").trim_matches('"').to_string();
        Headers {
            commit: get("x-repo-commit"),
            etag: get("x-linked-etag").or_else(|| get("etag")).map(clean),
            size: get("x-linked-size")
                .or_else(|| get("content-length"))
                .and_then(|v| v.parse().ok()),
            html: get("content-type").is_some_and(|t| t.starts_with("text/html")),
        }
    }

    /// Fields this set lacks, taken from `later` (the final response of a redirect).
    fn or(self, later: Headers) -> Headers {
        Headers {
            commit: self.commit.or(later.commit),
            etag: self.etag.or(later.etag),
            size: self.size.or(later.size),
            html: self.html || later.html,
        }
    }
}

enum CopyError {
    /// The connection failed or stalled mid-body.
    Read(String),
    /// The body is not the file (wrong size, wrong hash, not what its name says).
    Invalid(String),
    Local(TesseraError),
}

/// The hashes of a downloaded body: the git blob SHA-1 when the etag is one, else its
/// SHA-256 (an LFS file's etag, and the blob's name when there is no etag).
struct BodyDigest {
    hex: String,
    git_blob: bool,
    total: u64,
}

/// Copies and checks the body on a thread of its own while this one watches for
/// cancellation: a read blocked on a stalled server cannot hold up a Ctrl-C. An
/// abandoned transfer removes its partial file when its read finally returns.
fn transfer(
    response: ureq::http::Response<ureq::Body>,
    partial: &Path,
    file: &str,
    meta: &Headers,
) -> std::result::Result<BodyDigest, CopyError> {
    let abandoned = Arc::new(AtomicBool::new(false));
    let (done, finished) = mpsc::channel();
    let (path, name, announced, flag) = (
        partial.to_path_buf(),
        file.to_string(),
        meta.clone(),
        abandoned.clone(),
    );
    let body = response.into_body();
    std::thread::Builder::new()
        .name("tessera-download".into())
        .spawn(move || {
            let result =
                copy_verified(body.into_reader(), &path, &announced, &flag).and_then(|digest| {
                    check_content(&name, &path, &digest, &announced).map(|()| digest)
                });
            if flag.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&path);
            }
            let _ = done.send(result);
        })
        .map_err(|e| CopyError::Local(TesseraError::io(partial, e)))?;
    loop {
        match finished.recv_timeout(WATCH_INTERVAL) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(err) = crate::interrupt::checkpoint() {
                    abandoned.store(true, Ordering::Relaxed);
                    return Err(CopyError::Local(err));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(CopyError::Read("the download thread stopped".into()))
            }
        }
    }
}

/// Streams the body to `path`, hashing as it goes, until the end or until `abandoned`.
fn copy_verified(
    mut body: impl Read,
    path: &Path,
    meta: &Headers,
    abandoned: &AtomicBool,
) -> std::result::Result<BodyDigest, CopyError> {
    // A git blob id hashes a "blob <size>\0" header before the content.
    let mut git = match (meta.etag.as_deref(), meta.size) {
        (Some(tag), Some(size)) if is_hex(tag, 40) => {
            let mut sha = Sha1::new();
            sha.update(format!("blob {size}\0").as_bytes());
            Some(sha)
        }
        _ => None,
    };
    let mut sha256 = Sha256::new();
    let mut out =
        std::fs::File::create(path).map_err(|e| CopyError::Local(TesseraError::io(path, e)))?;
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        if abandoned.load(Ordering::Relaxed) {
            return Err(CopyError::Read("the download was abandoned".into()));
        }
        let n = body
            .read(&mut buffer)
            .map_err(|e| CopyError::Read(format!("the download stopped: {e}")))?;
        if n == 0 {
            break;
        }
        let chunk = &buffer[..n];
        match &mut git {
            Some(sha) => sha.update(chunk),
            None => sha256.update(chunk),
        }
        out.write_all(chunk)
            .map_err(|e| CopyError::Local(TesseraError::io(path, e)))?;
        total += n as u64;
    }
    out.sync_all()
        .map_err(|e| CopyError::Local(TesseraError::io(path, e)))?;
    Ok(match git {
        Some(sha) => BodyDigest {
            hex: hex(&sha.finalize()),
            git_blob: true,
            total,
        },
        None => BodyDigest {
            hex: hex(&sha256.finalize()),
            git_blob: false,
            total,
        },
    })
}

/// Checks a finished download against what the server announced.
fn check_content(
    file: &str,
    path: &Path,
    digest: &BodyDigest,
    meta: &Headers,
) -> std::result::Result<(), CopyError> {
    if let Some(expected) = meta.size {
        if digest.total != expected {
            return Err(CopyError::Invalid(format!(
                "ended after {} of {expected} bytes",
                digest.total
            )));
        }
    }
    if let Some(expected) = meta.etag.as_deref() {
        let comparable = if digest.git_blob {
            is_hex(expected, 40)
        } else {
            is_hex(expected, 64)
        };
        if comparable && digest.hex != expected.to_ascii_lowercase() {
            return Err(CopyError::Invalid(format!(
                "does not match its checksum ({} instead of {expected})",
                digest.hex
            )));
        }
    }
    if file.ends_with(".json") {
        let text = std::fs::read(path).map_err(|e| CopyError::Local(TesseraError::io(path, e)))?;
        if serde_json::from_slice::<serde_json::Value>(&text).is_err() {
            return Err(CopyError::Invalid("is not valid JSON".into()));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A single path component the server may name (commit, etag).
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Percent-encodes the `/` of a revision such as `refs/pr/1`, as huggingface_hub does.
fn encode_revision(revision: &str) -> String {
    revision.replace('/', "%2F")
}

fn join_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin_end = base
        .find("://")
        .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(base.len());
    if location.starts_with('/') {
        format!("{}{location}", &base[..origin_end])
    } else {
        let dir_end = base.rfind('/').map_or(base.len(), |i| i + 1);
        format!("{}{location}", &base[..dir_end])
    }
}

/// Points `link` at `target` (a relative symlink where the platform has them, else a
/// copy), replacing whatever was there in one step.
fn link(target: &Path, link: &Path) -> Result<()> {
    let parent = link
        .parent()
        .ok_or_else(|| TesseraError::load(link.display().to_string(), "no parent directory"))?;
    std::fs::create_dir_all(parent).map_err(|e| TesseraError::io(parent, e))?;
    let staging = parent.join(format!(
        ".{}.{}.link",
        link.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&staging);
    #[cfg(unix)]
    {
        let relative = relative_path(parent, target);
        std::os::unix::fs::symlink(&relative, &staging)
            .map_err(|e| TesseraError::io(&staging, e))?;
    }
    #[cfg(not(unix))]
    std::fs::copy(target, &staging).map_err(|e| TesseraError::io(&staging, e))?;
    std::fs::rename(&staging, link).map_err(|e| TesseraError::io(link, e))
}

/// `target` relative to the directory `from` (both inside the same cache folder).
fn relative_path(from: &Path, target: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part);
    }
    path
}

/// Writes a small file through a temporary one and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| TesseraError::load(path.display().to_string(), "no parent directory"))?;
    std::fs::create_dir_all(parent).map_err(|e| TesseraError::io(parent, e))?;
    let staging = parent.join(format!(".tmp.{}", std::process::id()));
    std::fs::write(&staging, data).map_err(|e| TesseraError::io(&staging, e))?;
    std::fs::rename(&staging, path).map_err(|e| TesseraError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_request() {
        let base = "http://127.0.0.1:8000/org/m/resolve/main/model.safetensors";
        assert_eq!(join_url(base, "https://cdn/x"), "https://cdn/x");
        assert_eq!(join_url(base, "/blob/1"), "http://127.0.0.1:8000/blob/1");
        assert_eq!(
            join_url(base, "other"),
            "http://127.0.0.1:8000/org/m/resolve/main/other"
        );
    }

    #[test]
    fn cache_links_are_relative() {
        let rel = relative_path(
            Path::new("/c/models--a--b/snapshots/abc/1_Pooling"),
            Path::new("/c/models--a--b/blobs/e1"),
        );
        assert_eq!(rel, PathBuf::from("../../../blobs/e1"));
    }

    #[test]
    fn server_names_never_leave_the_cache() {
        assert!(is_safe_name("0123abcd") && is_safe_name("v1.0"));
        assert!(!is_safe_name("..") && !is_safe_name("a/b") && !is_safe_name(""));
    }
}
