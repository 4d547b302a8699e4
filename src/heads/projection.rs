//! Linear projections after the encoder: colbert-ai's `linear`, and the chain of
//! sentence-transformers `Dense` modules (PyLate's ColBERT projection, EmbeddingGemma's
//! `2_Dense` / `3_Dense`): `y = act(x W^T (+ b))`, weight stored `[out, in]`.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::encoder::Resolved;
use crate::error::{Result, TesseraError};
use crate::layers::Linear;
use crate::layout::{read_json, SentenceTransformersLayout};
use crate::models::checkpoint::Checkpoint;

/// The activation of a `Dense` module, by its PyTorch class name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    Identity,
    Tanh,
    Relu,
    Sigmoid,
    Gelu,
}

impl DenseActivation {
    fn parse(name: &str) -> Option<Self> {
        // `torch.nn.modules.linear.Identity`, `torch.nn.modules.activation.Tanh`, ...
        match name.rsplit('.').next().unwrap_or(name) {
            "Identity" => Some(DenseActivation::Identity),
            "Tanh" => Some(DenseActivation::Tanh),
            "ReLU" => Some(DenseActivation::Relu),
            "Sigmoid" => Some(DenseActivation::Sigmoid),
            "GELU" => Some(DenseActivation::Gelu),
            _ => None,
        }
    }

    fn forward(self, x: Tensor) -> candle_core::Result<Tensor> {
        match self {
            DenseActivation::Identity => Ok(x),
            DenseActivation::Tanh => x.tanh(),
            DenseActivation::Relu => x.relu(),
            DenseActivation::Sigmoid => candle_nn::ops::sigmoid(&x),
            DenseActivation::Gelu => x.gelu_erf(),
        }
    }
}

pub struct Projection {
    linear: Linear,
    activation: DenseActivation,
    in_dim: usize,
    out_dim: usize,
}

impl Projection {
    /// Loads `linear.weight` (and `linear.bias` when `bias` is set) from `vb`; the
    /// output size comes from the stored weight, the input size must be `in_dim`.
    pub fn load(vb: &VarBuilder, in_dim: usize, bias: bool, source: &str) -> Result<Self> {
        let weight = vb.get_unchecked("linear.weight").map_err(|e| {
            TesseraError::load(source, format!("no projection weight 'linear.weight': {e}"))
        })?;
        let (out_dim, stored_in) = weight
            .dims2()
            .map_err(|_| TesseraError::load(source, "'linear.weight' is not a matrix"))?;
        if stored_in != in_dim {
            return Err(TesseraError::load(
                source,
                format!("'linear.weight' expects inputs of size {stored_in}, but the layer before produces {in_dim}"),
            ));
        }
        let bias = if bias {
            Some(
                vb.get(out_dim, "linear.bias")
                    .map_err(|e| TesseraError::load(source, e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Projection {
            linear: Linear::new(weight, bias)?,
            activation: DenseActivation::Identity,
            in_dim,
            out_dim,
        })
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Projects rows `[n, in]` to `[n, out]`.
    pub fn forward(&self, rows: &Tensor) -> Result<Tensor> {
        Ok(self.activation.forward(self.linear.forward(rows)?)?)
    }
}

/// A `Dense` module's `config.json`.
#[derive(Deserialize)]
struct DenseConfig {
    #[serde(default = "default_true")]
    bias: bool,
    #[serde(default)]
    activation_function: Option<String>,
    #[serde(default)]
    use_residual: bool,
}

fn default_true() -> bool {
    true
}

/// The chain of sentence-transformers `Dense` modules in `modules.json` order (empty
/// when there is none); `hidden` is the size the first one receives.
pub fn load_dense_modules(
    dir: &Path,
    st: &SentenceTransformersLayout,
    hidden: usize,
    runtime: &Resolved,
    source: &str,
) -> Result<Vec<Projection>> {
    let device = &runtime.device;
    let _packing = runtime.packing();
    let mut projections: Vec<Projection> = Vec::new();
    for module in st.modules.iter().filter(|m| m.class_name() == "Dense") {
        let module_dir = dir.join(&module.path);
        let config: DenseConfig = read_json(&module_dir.join("config.json"))?;
        // sentence-transformers' Dense defaults to Tanh when no activation is saved.
        let name = config.activation_function.as_deref().unwrap_or("Tanh");
        let activation = DenseActivation::parse(name).ok_or_else(|| {
            TesseraError::load(
                source,
                format!(
                    "Dense module '{}' uses activation '{name}' (supported: Identity, Tanh, ReLU, Sigmoid, GELU)",
                    module.path
                ),
            )
        })?;
        if config.use_residual {
            return Err(TesseraError::load(
                source,
                format!(
                    "Dense module '{}' uses a residual connection, which is not supported",
                    module.path
                ),
            ));
        }
        let weights = module_dir.join("model.safetensors");
        let vb = Checkpoint::open(&[weights], &[])?.into_var_builder(runtime.dtype, device);
        let in_dim = projections.last().map_or(hidden, Projection::out_dim);
        let mut projection = Projection::load(&vb, in_dim, config.bias, source)?;
        projection.activation = activation;
        projections.push(projection);
    }
    Ok(projections)
}
