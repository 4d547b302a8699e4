//! Loading golden cases (`tests/fixtures/golden/<paradigm>/<case>`) for the Rust tests.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub struct Case {
    pub dir: PathBuf,
    pub cases: Value,
}

impl Case {
    /// Every case directory of a paradigm.
    pub fn all(paradigm: &str) -> Vec<Case> {
        Case::all_in(&fixtures().join("golden").join(paradigm))
    }

    /// Every case directory (one holding `cases.json`) under `root`.
    pub fn all_in(root: &Path) -> Vec<Case> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .expect("golden paradigm folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("cases.json").is_file())
            .collect();
        dirs.sort();
        dirs.into_iter()
            .map(|dir| {
                let text = std::fs::read_to_string(dir.join("cases.json")).expect("cases.json");
                Case {
                    cases: serde_json::from_str(&text).expect("cases.json is JSON"),
                    dir,
                }
            })
            .collect()
    }

    pub fn name(&self) -> String {
        self.dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// The model directory; real models live under `tests/fixtures/real` once
    /// `scripts/test` has fetched them from PyPI.
    pub fn model_dir(&self) -> PathBuf {
        let golden = self.dir.join("model");
        if !golden.join("model_source.json").is_file() {
            return golden;
        }
        let rel = self.dir.strip_prefix(fixtures().join("golden")).unwrap();
        let real = fixtures().join("real").join(rel).join("model");
        assert!(
            real.join("model.safetensors").is_file(),
            "{} needs the real weights: run `python tests/fixtures/golden/fetch_real_models.py --dest tests/fixtures/real` (scripts/test does)",
            real.display()
        );
        real
    }

    pub fn texts(&self, name: &str) -> Vec<String> {
        self.cases["inputs"][name]
            .as_array()
            .unwrap_or_else(|| panic!("inputs.{name}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    pub fn check(&self, id: &str) -> Option<&Value> {
        self.cases["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
    }

    pub fn array_f32(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let t = self.tensor(key);
        let dims = t.dims().to_vec();
        (dims, t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
    }

    pub fn array_i64(&self, key: &str) -> Vec<i64> {
        self.tensor(key)
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
    }

    fn tensor(&self, key: &str) -> Tensor {
        Tensor::read_npz_by_name(self.dir.join("expected.npz"), &[key])
            .unwrap_or_else(|e| panic!("{key} in expected.npz: {e}"))
            .remove(0)
    }
}

/// `|got - want| <= atol + rtol * |want|` for every element, with a readable failure.
pub fn assert_close(label: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    let mut worst = (0usize, 0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > worst.1 || !g.is_finite() {
            worst = (i, excess.max(f32::MAX * (!g.is_finite()) as u8 as f32));
        }
    }
    assert!(
        worst.1 <= 0.0,
        "{label}: element {} differs: got {} want {}",
        worst.0,
        got[worst.0],
        want[worst.0]
    );
}

/// Tolerances of a check's `compare` block.
pub fn tolerances(check: &Value) -> (f32, f32) {
    let compare = &check["compare"];
    (
        compare["atol"].as_f64().unwrap_or(1e-4) as f32,
        compare["rtol"].as_f64().unwrap_or(1e-4) as f32,
    )
}
