//! SigLIP vision transformer (the image tower of PaliGemma / ColPali), without the
//! pooling head.
//!
//! Paper: Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (2023).
//! Reference: transformers `models/siglip/modeling_siglip.py` (`SiglipVisionTransformer`).

use candle_core::{DType, Module, Tensor};
use candle_nn::{layer_norm, LayerNorm, VarBuilder};

use crate::layers::matmul::matmul;
use crate::layers::Linear;
use serde::Deserialize;

use crate::error::{Result, TesseraError};

/// `vision_config` of a PaliGemma config (`siglip_vision_model`); absent keys take
/// transformers' `SiglipVisionConfig` defaults, as real configs list only the others.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "default_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "default_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "default_num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_num_channels")]
    pub num_channels: usize,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
}

fn default_hidden_size() -> usize {
    768
}
fn default_intermediate_size() -> usize {
    3072
}
fn default_num_hidden_layers() -> usize {
    12
}
fn default_num_attention_heads() -> usize {
    12
}
fn default_num_channels() -> usize {
    3
}
fn default_image_size() -> usize {
    224
}
fn default_patch_size() -> usize {
    16
}
fn default_layer_norm_eps() -> f64 {
    1e-6
}
fn default_hidden_act() -> String {
    "gelu_pytorch_tanh".to_string()
}

impl Config {
    /// Patches per image side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn num_patches(&self) -> usize {
        self.grid() * self.grid()
    }
}

/// The activations the SigLIP and Gemma configs name.
#[derive(Debug, Clone, Copy)]
pub enum Activation {
    GeluTanh,
    GeluErf,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::GeluErf),
            other => Err(TesseraError::Config(format!(
                "activation '{other}' is not supported (expected gelu_pytorch_tanh or gelu)"
            ))),
        }
    }

    pub fn apply(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::GeluTanh => xs.gelu(),
            Activation::GeluErf => xs.gelu_erf(),
        }
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Attention {
            q_proj: Linear::load(vb.pp("q_proj"), h, h, true)?,
            k_proj: Linear::load(vb.pp("k_proj"), h, h, true)?,
            v_proj: Linear::load(vb.pp("v_proj"), h, h, true)?,
            out_proj: Linear::load(vb.pp("out_proj"), h, h, true)?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    /// Full (unmasked) multi-head attention over the patches.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, n, _) = xs.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, n, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q_proj.forward(xs)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (matmul(&q, &k.t()?)? * scale)?;
        // Softmax in float32 as transformers does, whatever the weights' dtype.
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?;
        let out =
            matmul(&probs, &v)?
                .transpose(1, 2)?
                .reshape((b, n, self.heads * self.head_dim))?;
        Ok(self.out_proj.forward(&out)?)
    }
}

struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: Attention,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl EncoderLayer {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(EncoderLayer {
            layer_norm1: layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
            self_attn: Attention::load(vb.pp("self_attn"), cfg)?,
            layer_norm2: layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: Linear::load(vb.pp("mlp").pp("fc1"), h, cfg.intermediate_size, true)?,
            fc2: Linear::load(vb.pp("mlp").pp("fc2"), cfg.intermediate_size, h, true)?,
            act: Activation::parse(&cfg.hidden_act)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let attended = self.self_attn.forward(&self.layer_norm1.forward(xs)?)?;
        let xs = (xs + attended)?;
        let hidden = self
            .act
            .apply(&self.fc1.forward(&self.layer_norm2.forward(&xs)?)?)?;
        Ok((&xs + self.fc2.forward(&hidden)?)?)
    }
}

/// `SiglipVisionTransformer` without the head: patch + position embeddings, encoder,
/// `post_layernorm`. Load it at the `vision_model` prefix.
pub struct VisionModel {
    /// `patch_embedding.weight` as `[channels * patch * patch, hidden]`.
    patch_weight_t: Tensor,
    patch_bias: Tensor,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
    config: Config,
}

impl VisionModel {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let embeddings = vb.pp("embeddings");
        let patch = embeddings.pp("patch_embedding");
        let (p, c, h) = (cfg.patch_size, cfg.num_channels, cfg.hidden_size);
        // The Conv2d (kernel = stride = patch) as one matmul over flattened patches:
        // the same sums, and Candle's CPU conv lacks bf16.
        let patch_weight_t = patch
            .get((h, c, p, p), "weight")?
            .reshape((h, c * p * p))?
            .t()?
            .contiguous()?;
        let patch_bias = patch.get(h, "bias")?;
        let position_embedding = embeddings
            .pp("position_embedding")
            .get((cfg.num_patches(), cfg.hidden_size), "weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::load(vb.pp("encoder").pp("layers").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let post_layernorm =
            layer_norm(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("post_layernorm"))?;
        Ok(VisionModel {
            patch_weight_t,
            patch_bias,
            position_embedding,
            layers,
            post_layernorm,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `(batch, channels, size, size)` pixel values -> `(batch, patches, hidden)`, the
    /// patches in raster order.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (b, c, height, width) = pixel_values.dims4()?;
        let (size, p) = (self.config.image_size, self.config.patch_size);
        if height != size || width != size || c != self.config.num_channels {
            return Err(TesseraError::Encoding(format!(
                "the vision tower takes {} channels of {size}x{size} pixels, got {c} of {width}x{height}",
                self.config.num_channels
            )));
        }
        let n = size / p;
        // (b, c, n, p, n, p) -> (b, row, col, c, p, p): raster-order patches, each
        // flattened in (channel, row, col) order like the conv weight.
        let patches = pixel_values
            .narrow(2, 0, n * p)?
            .narrow(3, 0, n * p)?
            .reshape((b, c, n, p, n, p))?
            .permute(vec![0, 2, 4, 1, 3, 5])?
            .reshape((b, n * n, c * p * p))?;
        let embedded = matmul(&patches, &self.patch_weight_t)?.broadcast_add(&self.patch_bias)?;
        let mut xs = embedded.broadcast_add(&self.position_embedding)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        Ok(self.post_layernorm.forward(&xs)?.contiguous()?)
    }
}
