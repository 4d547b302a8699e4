//! Chronos-Bolt: patch-based T5 encoder-decoder that forecasts quantiles directly.
//!
//! Paper: Ansari et al., "Chronos: Learning the Language of Time Series" (TMLR 2024,
//! <https://arxiv.org/abs/2403.07815>); Bolt is the patched, direct multi-quantile variant
//! described in the chronos-forecasting README. T5: Raffel et al. (JMLR 2020,
//! <https://arxiv.org/abs/1910.10683>).
//!
//! Reference: chronos-forecasting 2.3 `src/chronos/chronos_bolt.py`
//! (`ChronosBoltModelForForecasting`: `InstanceNorm`, `Patch`, `ResidualBlock`, `encode`,
//! `decode`) on transformers' `T5Stack` (`modeling_t5.py`: `T5Attention`, `T5LayerNorm`,
//! `T5DenseActDense`, `T5DenseGatedActDense`). candle-transformers' T5 expects token ids and
//! a KV cache; Bolt feeds patch embeddings and decodes a single step, so the T5 pieces live
//! here. Weight names (`vb.pp`) are the PyTorch state-dict keys.
//!
//! One call of [`ChronosBolt::forward`] is one `ChronosBoltModelForForecasting.forward` on a
//! left-padded `(batch, length)` context; the autoregressive extension and quantile selection
//! live in `paradigms/timeseries.rs`, as they live in the reference pipeline.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use crate::layers::matmul::matmul;
use crate::layers::{gated, Linear, Norm};
use serde::Deserialize;

use crate::error::{Result, TesseraError};
use crate::matrix::Matrix;

/// `chronos_config` block of `config.json` (`ChronosBoltConfig`).
#[derive(Debug, Clone, Deserialize)]
pub struct ChronosConfig {
    pub context_length: usize,
    pub prediction_length: usize,
    pub input_patch_size: usize,
    pub input_patch_stride: usize,
    pub quantiles: Vec<f64>,
    #[serde(default)]
    pub use_reg_token: bool,
}

/// `config.json` of a Chronos-Bolt checkpoint: a T5 config plus `chronos_config`. Defaults
/// are `T5Config`'s.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "default_d_model")]
    pub d_model: usize,
    #[serde(default = "default_d_kv")]
    pub d_kv: usize,
    #[serde(default = "default_d_ff")]
    pub d_ff: usize,
    #[serde(default = "default_num_heads")]
    pub num_heads: usize,
    #[serde(default = "default_num_layers")]
    pub num_layers: usize,
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    #[serde(default = "default_num_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_feed_forward_proj")]
    pub feed_forward_proj: String,
    /// Written by `T5Config` from `feed_forward_proj`; when present it wins, as the stored
    /// value overrides the derived one on load.
    #[serde(default)]
    pub dense_act_fn: Option<String>,
    #[serde(default)]
    pub is_gated_act: Option<bool>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub chronos_pipeline_class: Option<String>,
    pub chronos_config: ChronosConfig,
}

fn default_d_model() -> usize {
    512
}
fn default_d_kv() -> usize {
    64
}
fn default_d_ff() -> usize {
    2048
}
fn default_num_heads() -> usize {
    8
}
fn default_num_layers() -> usize {
    6
}
fn default_num_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_layer_norm_epsilon() -> f64 {
    1e-6
}
fn default_feed_forward_proj() -> String {
    "relu".to_string()
}

/// The reference overrides `reg_token_id` to 1 whenever the register token is used.
const REG_TOKEN_ID: usize = 1;
/// `InstanceNorm.eps`: the scale of a constant series.
const MIN_SCALE: f32 = 1e-5;

impl Config {
    /// Number of decoder blocks (`num_decoder_layers`, else `num_layers`).
    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// Activation name after T5Config's `feed_forward_proj` parsing (`gated-gelu` → `gelu_new`).
    pub fn activation_name(&self) -> String {
        if let Some(name) = &self.dense_act_fn {
            return name.clone();
        }
        if self.feed_forward_proj == "gated-gelu" {
            return "gelu_new".to_string();
        }
        self.feed_forward_proj
            .rsplit('-')
            .next()
            .unwrap_or("relu")
            .to_string()
    }

    pub fn gated(&self) -> bool {
        self.is_gated_act
            .unwrap_or_else(|| self.feed_forward_proj.starts_with("gated-"))
    }

    pub fn num_quantiles(&self) -> usize {
        self.chronos_config.quantiles.len()
    }

    pub fn validate(&self) -> Result<()> {
        let c = &self.chronos_config;
        let positive = [
            ("chronos_config.context_length", c.context_length),
            ("chronos_config.prediction_length", c.prediction_length),
            ("chronos_config.input_patch_size", c.input_patch_size),
            ("chronos_config.input_patch_stride", c.input_patch_stride),
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_heads", self.num_heads),
            (
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(TesseraError::Config(format!(
                    "{name} must be positive, found 0"
                )));
            }
        }
        if c.quantiles.is_empty() {
            return Err(TesseraError::Config(
                "chronos_config.quantiles is empty".into(),
            ));
        }
        if c.quantiles
            .iter()
            .any(|q| !(q.is_finite() && *q > 0.0 && *q < 1.0))
        {
            return Err(TesseraError::Config(format!(
                "chronos_config.quantiles must lie in (0, 1), found {:?}",
                c.quantiles
            )));
        }
        if let Some(class) = &self.chronos_pipeline_class {
            if class != "ChronosBoltPipeline" {
                return Err(TesseraError::Config(format!(
                    "chronos_pipeline_class '{class}' is not supported: only Chronos-Bolt \
                     (ChronosBoltPipeline) checkpoints can be run"
                )));
            }
        }
        Activation::parse(&self.activation_name())?;
        Ok(())
    }
}

/// The activations `transformers.activations.ACT2FN` names that T5 configs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// `gelu`: the exact erf form.
    GeluErf,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Silu,
    QuickGelu,
    Tanh,
    Sigmoid,
    Identity,
}

impl Activation {
    /// The same function among the fused kernels' activations, when there is one.
    fn fused(self) -> Option<crate::layers::Activation> {
        match self {
            Activation::Relu => Some(crate::layers::Activation::Relu),
            Activation::GeluErf => Some(crate::layers::Activation::GeluErf),
            Activation::GeluTanh => Some(crate::layers::Activation::GeluTanh),
            Activation::Silu => Some(crate::layers::Activation::Silu),
            _ => None,
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "relu" => Activation::Relu,
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "quick_gelu" => Activation::QuickGelu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "linear" => Activation::Identity,
            other => {
                return Err(TesseraError::Config(format!(
                    "activation '{other}' is not supported (relu, gelu, gelu_new, \
                     gelu_pytorch_tanh, gelu_fast, silu, swish, quick_gelu, tanh, sigmoid, linear)"
                )))
            }
        })
    }

    fn forward(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::GeluErf => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Silu => x.silu(),
            Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(x),
            Activation::Identity => Ok(x.clone()),
        }
    }
}

/// `ResidualBlock`: `output(act(hidden(x))) + residual(x)`, all with biases.
struct ResidualBlock {
    hidden: Linear,
    output: Linear,
    residual: Linear,
    act: Activation,
}

impl ResidualBlock {
    fn load(
        vb: VarBuilder,
        in_dim: usize,
        h_dim: usize,
        out_dim: usize,
        act: Activation,
    ) -> Result<Self> {
        Ok(ResidualBlock {
            hidden: Linear::load(vb.pp("hidden_layer"), in_dim, h_dim, true)?,
            output: Linear::load(vb.pp("output_layer"), h_dim, out_dim, true)?,
            residual: Linear::load(vb.pp("residual_layer"), in_dim, out_dim, true)?,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let hidden = self.act.forward(&self.hidden.forward(x)?)?;
        self.output.forward(&hidden)? + self.residual.forward(x)?
    }
}

/// `T5LayerNorm`: RMS normalisation without mean subtraction or bias (the shared fused
/// RMSNorm on the CPU, in f32 at least elsewhere).
fn t5_layer_norm(vb: VarBuilder, size: usize, eps: f64) -> Result<Norm> {
    Ok(Norm::rms_norm(vb, size, eps, 0.0)?)
}

/// T5 feed-forward: `wo(act(wi(x)))`, or gated `wo(act(wi_0(x)) * wi_1(x))`; no biases.
/// `wi_0` and `wi_1` are stacked into one product.
enum FeedForward {
    Plain { wi: Linear, wo: Linear },
    Gated { wi: Linear, wo: Linear },
}

struct T5FeedForward {
    norm: Norm,
    ff: FeedForward,
    act: Activation,
}

impl T5FeedForward {
    fn load(vb: VarBuilder, cfg: &Config, act: Activation) -> Result<Self> {
        let dense = vb.pp("DenseReluDense");
        let ff = if cfg.gated() {
            FeedForward::Gated {
                wi: Linear::stack(&[
                    Linear::load(dense.pp("wi_0"), cfg.d_model, cfg.d_ff, false)?,
                    Linear::load(dense.pp("wi_1"), cfg.d_model, cfg.d_ff, false)?,
                ])?,
                wo: Linear::load(dense.pp("wo"), cfg.d_ff, cfg.d_model, false)?,
            }
        } else {
            FeedForward::Plain {
                wi: Linear::load(dense.pp("wi"), cfg.d_model, cfg.d_ff, false)?,
                wo: Linear::load(dense.pp("wo"), cfg.d_ff, cfg.d_model, false)?,
            }
        };
        Ok(T5FeedForward {
            norm: t5_layer_norm(vb.pp("layer_norm"), cfg.d_model, cfg.layer_norm_epsilon)?,
            ff,
            act,
        })
    }

    /// `x + FF(norm(x))`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.norm.forward(x)?;
        let fused = self.act.fused();
        let out = match (&self.ff, fused) {
            (FeedForward::Plain { wi, wo }, Some(act)) => {
                wo.forward(&wi.forward_activated(&h, act)?)?
            }
            (FeedForward::Plain { wi, wo }, None) => {
                wo.forward(&self.act.forward(&wi.forward(&h)?)?)?
            }
            (FeedForward::Gated { wi, wo }, Some(act)) => {
                let both = wi.forward(&h)?;
                let (b, t, _) = both.dims3()?;
                let rows = both.reshape((b * t, ()))?;
                wo.forward(&gated(&rows, act, true)?.reshape((b, t, ()))?)?
            }
            (FeedForward::Gated { wi, wo }, None) => {
                let both = wi.forward(&h)?;
                let half = both.dim(D::Minus1)? / 2;
                let gate = self.act.forward(&both.narrow(D::Minus1, 0, half)?)?;
                wo.forward(&(gate * both.narrow(D::Minus1, half, half)?)?)?
            }
        };
        x + out
    }
}

/// `T5Attention` without caching. T5 does not scale `q·kᵀ` by `1/sqrt(d_kv)`.
struct T5Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    num_heads: usize,
    d_kv: usize,
}

impl T5Attention {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        Ok(T5Attention {
            q: Linear::load(vb.pp("q"), cfg.d_model, inner, false)?,
            k: Linear::load(vb.pp("k"), cfg.d_model, inner, false)?,
            v: Linear::load(vb.pp("v"), cfg.d_model, inner, false)?,
            o: Linear::load(vb.pp("o"), inner, cfg.d_model, false)?,
            num_heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        })
    }

    /// `(B, T, d)` → `(B, heads, T, d_kv)`.
    fn heads(&self, lin: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        lin.forward(x)?
            .reshape((b, t, self.num_heads, self.d_kv))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Attention of `queries` over `keys_values`; `bias` (f32, broadcastable to
    /// `(B, heads, Tq, Tk)`) holds the position bias and the key mask.
    fn forward(
        &self,
        queries: &Tensor,
        keys_values: &Tensor,
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, tq, _) = queries.dims3()?;
        let q = self.heads(&self.q, queries)?;
        let k = self.heads(&self.k, keys_values)?;
        let v = self.heads(&self.v, keys_values)?;
        let scores = matmul(&q, &k.t()?)?
            .to_dtype(DType::F32)?
            .broadcast_add(bias)?;
        // The reference takes the softmax in float32 whatever the model dtype.
        let weights = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
        let context =
            matmul(&weights, &v)?
                .transpose(1, 2)?
                .reshape((b, tq, self.num_heads * self.d_kv))?;
        self.o.forward(&context)
    }

    /// Self-attention over a single position: the softmax over one key is 1, so the
    /// output is `o(v(x))` whatever the scores and the position bias.
    fn forward_single_position(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.o.forward(&self.v.forward(x)?)
    }
}

/// `T5Attention._relative_position_bucket` for one `key_pos - query_pos`. The reference
/// evaluates the logarithm in float32 and truncates toward zero; so does this.
pub fn relative_position_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = num_buckets as i64;
    let mut base = 0i64;
    let mut distance = relative;
    if bidirectional {
        buckets /= 2;
        if distance > 0 {
            base += buckets;
        }
        distance = distance.abs();
    } else {
        distance = (-distance).max(0);
    }
    let max_exact = buckets / 2;
    if distance < max_exact {
        return (base + distance) as usize;
    }
    let log_ratio = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let scaled =
        (distance as f32 / max_exact as f32).ln() / log_ratio * (buckets - max_exact) as f32;
    let large = (max_exact + scaled as i64).min(buckets - 1);
    (base + large) as usize
}

struct EncoderBlock {
    attn_norm: Norm,
    attn: T5Attention,
    ff: T5FeedForward,
}

struct Encoder {
    blocks: Vec<EncoderBlock>,
    /// `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight`: `(buckets, heads)`.
    relative_attention_bias: Tensor,
    final_norm: Norm,
    num_buckets: usize,
    max_distance: usize,
}

impl Encoder {
    fn load(vb: VarBuilder, cfg: &Config, act: Activation) -> Result<Self> {
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let block = vb.pp(format!("block.{i}"));
            blocks.push(EncoderBlock {
                attn_norm: t5_layer_norm(
                    block.pp("layer.0.layer_norm"),
                    cfg.d_model,
                    cfg.layer_norm_epsilon,
                )?,
                attn: T5Attention::load(block.pp("layer.0.SelfAttention"), cfg)?,
                ff: T5FeedForward::load(block.pp("layer.1"), cfg, act)?,
            });
        }
        let relative_attention_bias = vb.get(
            (cfg.relative_attention_num_buckets, cfg.num_heads),
            "block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        )?;
        Ok(Encoder {
            blocks,
            relative_attention_bias,
            final_norm: t5_layer_norm(
                vb.pp("final_layer_norm"),
                cfg.d_model,
                cfg.layer_norm_epsilon,
            )?,
            num_buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
        })
    }

    /// `(1, heads, T, T)` bidirectional position bias of block 0, reused by every block.
    fn position_bias(&self, len: usize) -> candle_core::Result<Tensor> {
        let device = self.relative_attention_bias.device();
        let buckets: Vec<u32> = (0..len as i64)
            .flat_map(|query| {
                (0..len as i64).map(move |key| {
                    relative_position_bucket(key - query, true, self.num_buckets, self.max_distance)
                        as u32
                })
            })
            .collect();
        let buckets = Tensor::from_vec(buckets, len * len, device)?;
        let (_, heads) = self.relative_attention_bias.dims2()?;
        self.relative_attention_bias
            .to_dtype(DType::F32)?
            .index_select(&buckets, 0)?
            .reshape((len, len, heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)
    }

    /// `key_mask`: `(B, 1, 1, T)` additive f32 mask.
    fn forward(&self, embeds: &Tensor, key_mask: &Tensor) -> candle_core::Result<Tensor> {
        let (_, len, _) = embeds.dims3()?;
        let bias = self.position_bias(len)?.broadcast_add(key_mask)?;
        let mut h = embeds.clone();
        for block in &self.blocks {
            let normed = block.attn_norm.forward(&h)?;
            h = (&h + block.attn.forward(&normed, &normed, &bias)?)?;
            h = block.ff.forward(&h)?;
        }
        self.final_norm.forward(&h)
    }
}

struct DecoderBlock {
    self_norm: Norm,
    self_attn: T5Attention,
    cross_norm: Norm,
    cross_attn: T5Attention,
    ff: T5FeedForward,
}

struct Decoder {
    blocks: Vec<DecoderBlock>,
    final_norm: Norm,
}

impl Decoder {
    fn load(vb: VarBuilder, cfg: &Config, act: Activation) -> Result<Self> {
        let layers = cfg.decoder_layers();
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let block = vb.pp(format!("block.{i}"));
            blocks.push(DecoderBlock {
                self_norm: t5_layer_norm(
                    block.pp("layer.0.layer_norm"),
                    cfg.d_model,
                    cfg.layer_norm_epsilon,
                )?,
                self_attn: T5Attention::load(block.pp("layer.0.SelfAttention"), cfg)?,
                cross_norm: t5_layer_norm(
                    block.pp("layer.1.layer_norm"),
                    cfg.d_model,
                    cfg.layer_norm_epsilon,
                )?,
                cross_attn: T5Attention::load(block.pp("layer.1.EncDecAttention"), cfg)?,
                ff: T5FeedForward::load(block.pp("layer.2"), cfg, act)?,
            });
        }
        Ok(Decoder {
            blocks,
            final_norm: t5_layer_norm(
                vb.pp("final_layer_norm"),
                cfg.d_model,
                cfg.layer_norm_epsilon,
            )?,
        })
    }

    /// One decoding step from `start` `(B, 1, d)`; cross-attention has no position bias.
    fn forward(
        &self,
        start: &Tensor,
        encoded: &Tensor,
        key_mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let mut y = start.clone();
        for block in &self.blocks {
            y = (&y
                + block
                    .self_attn
                    .forward_single_position(&block.self_norm.forward(&y)?)?)?;
            let normed = block.cross_norm.forward(&y)?;
            y = (&y + block.cross_attn.forward(&normed, encoded, key_mask)?)?;
            y = block.ff.forward(&y)?;
        }
        self.final_norm.forward(&y)
    }
}

/// A context batch after instance normalisation and patching (host side, f32).
#[derive(Debug, Clone)]
pub struct PatchedContext {
    pub batch: usize,
    /// Columns of the context after truncation to `context_length`.
    pub length: usize,
    /// `(batch, length)`: `(x - loc) / scale`, NaN where missing.
    pub normalized: Vec<f32>,
    pub loc: Vec<f32>,
    pub scale: Vec<f32>,
    pub num_patches: usize,
    /// `(batch, num_patches, 2 * patch_size)`: values (missing → 0), then the 0/1 mask.
    pub patches: Vec<f32>,
    /// `(batch, num_patches)`: 1 where the patch holds an observed value.
    pub patch_mask: Vec<f32>,
}

/// Encoder outputs of one batch.
pub struct Encoded {
    /// `(B, T, d)` patch embeddings, then [REG] when the model uses it.
    pub input_embeds: Tensor,
    /// `(B, T)` f32, 1 = attended.
    pub attention_mask: Tensor,
    /// `(B, T, d)` after `encoder.final_layer_norm`.
    pub hidden: Tensor,
}

pub struct ChronosBolt {
    config: Config,
    shared: Tensor,
    input_patch_embedding: ResidualBlock,
    encoder: Encoder,
    decoder: Decoder,
    output_patch_embedding: ResidualBlock,
    device: Device,
    dtype: DType,
}

impl ChronosBolt {
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        cfg.validate()?;
        let act = Activation::parse(&cfg.activation_name())?;
        let c = &cfg.chronos_config;
        // The reference sizes `shared` by the register token, not by `vocab_size`.
        let vocab = if c.use_reg_token { 2 } else { 1 };
        let start = cfg.decoder_start_token_id.unwrap_or(0) as usize;
        if start >= vocab {
            return Err(TesseraError::Config(format!(
                "decoder_start_token_id {start} is outside the {vocab}-row shared embedding"
            )));
        }
        Ok(ChronosBolt {
            shared: vb.get((vocab, cfg.d_model), "shared.weight")?,
            input_patch_embedding: ResidualBlock::load(
                vb.pp("input_patch_embedding"),
                2 * c.input_patch_size,
                cfg.d_ff,
                cfg.d_model,
                act,
            )?,
            encoder: Encoder::load(vb.pp("encoder"), cfg, act)?,
            decoder: Decoder::load(vb.pp("decoder"), cfg, act)?,
            output_patch_embedding: ResidualBlock::load(
                vb.pp("output_patch_embedding"),
                cfg.d_model,
                cfg.d_ff,
                cfg.num_quantiles() * c.prediction_length,
                act,
            )?,
            device: vb.device().clone(),
            dtype: vb.dtype(),
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Instance normalisation (`InstanceNorm`) and patching (`Patch`) of a left-padded
    /// context; NaN marks missing values. Columns beyond `context_length` are cut from the
    /// left. Statistics accumulate in f64 and round to f32, the reference's float32 result
    /// up to summation order.
    pub fn patch_context(&self, context: &Matrix) -> PatchedContext {
        let c = &self.config.chronos_config;
        let (p, stride) = (c.input_patch_size, c.input_patch_stride);
        let length = context.cols.min(c.context_length);
        let skip = context.cols - length;
        let padded = length.div_ceil(p) * p;
        let pad = padded - length;
        let num_patches = if padded >= p {
            (padded - p) / stride + 1
        } else {
            0
        };
        let mut out = PatchedContext {
            batch: context.rows,
            length,
            normalized: Vec::with_capacity(context.rows * length),
            loc: Vec::with_capacity(context.rows),
            scale: Vec::with_capacity(context.rows),
            num_patches,
            patches: Vec::with_capacity(context.rows * num_patches * 2 * p),
            patch_mask: Vec::with_capacity(context.rows * num_patches),
        };
        for row in context.iter_rows() {
            let row = &row[skip..];
            let (loc, scale) = instance_stats(row);
            out.loc.push(loc);
            out.scale.push(scale);
            let start = out.normalized.len();
            out.normalized
                .extend(row.iter().map(|&x| (x - loc) / scale));
            let z = &out.normalized[start..];
            // Patches align to the end of the series: missing positions are prepended.
            let value = |i: usize| if i < pad { f32::NAN } else { z[i - pad] };
            for k in 0..num_patches {
                let span = k * stride..k * stride + p;
                let mut observed = false;
                for i in span.clone() {
                    let v = value(i);
                    observed |= !v.is_nan();
                    out.patches.push(if v.is_nan() { 0.0 } else { v });
                }
                for i in span {
                    out.patches.push(if value(i).is_nan() { 0.0 } else { 1.0 });
                }
                out.patch_mask.push(if observed { 1.0 } else { 0.0 });
            }
        }
        out
    }

    /// `ChronosBoltModelForForecasting.encode` after normalisation and patching.
    pub fn encode(&self, patched: &PatchedContext) -> Result<Encoded> {
        let c = &self.config.chronos_config;
        let (b, n) = (patched.batch, patched.num_patches);
        let features = Tensor::from_slice(
            &patched.patches,
            (b, n, 2 * c.input_patch_size),
            &self.device,
        )?
        .to_dtype(self.dtype)?;
        let mut embeds = self.input_patch_embedding.forward(&features)?;
        let mut mask = Tensor::from_slice(&patched.patch_mask, (b, n), &self.device)?;
        if c.use_reg_token {
            let reg = self
                .shared
                .narrow(0, REG_TOKEN_ID, 1)?
                .unsqueeze(0)?
                .broadcast_as((b, 1, self.config.d_model))?;
            embeds = Tensor::cat(&[&embeds, &reg], 1)?;
            mask = Tensor::cat(
                &[&mask, &Tensor::ones((b, 1), DType::F32, &self.device)?],
                1,
            )?;
        }
        let hidden = self.encoder.forward(&embeds, &additive_key_mask(&mask)?)?;
        Ok(Encoded {
            input_embeds: embeds,
            attention_mask: mask,
            hidden,
        })
    }

    /// `ChronosBoltModelForForecasting.decode`: one step from `decoder_start_token_id`,
    /// `(B, 1, d)`.
    pub fn decode(&self, encoded: &Encoded) -> Result<Tensor> {
        let (b, _, d) = encoded.hidden.dims3()?;
        let start = self.config.decoder_start_token_id.unwrap_or(0) as usize;
        let start = self
            .shared
            .narrow(0, start, 1)?
            .unsqueeze(0)?
            .broadcast_as((b, 1, d))?;
        let key_mask = additive_key_mask(&encoded.attention_mask)?;
        Ok(self
            .decoder
            .forward(&start.contiguous()?, &encoded.hidden, &key_mask)?)
    }

    /// The quantile head in normalised units, `(B, Q, P)` quantile-major.
    pub fn quantile_head(&self, decoded: &Tensor) -> Result<Tensor> {
        let c = &self.config.chronos_config;
        let b = decoded.dim(0)?;
        Ok(self
            .output_patch_embedding
            .forward(decoded)?
            .reshape((b, self.config.num_quantiles(), c.prediction_length))?
            .to_dtype(DType::F32)?)
    }

    /// One model call on a left-padded `(B, L)` context (NaN = missing): the unscaled
    /// quantile forecasts, `(B, Q, P)` flattened row-major.
    pub fn forward(&self, context: &Matrix) -> Result<Vec<f32>> {
        let patched = self.patch_context(context);
        let encoded = self.encode(&patched)?;
        let decoded = self.decode(&encoded)?;
        let normalized = self
            .quantile_head(&decoded)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let per_row = self.config.num_quantiles() * self.config.chronos_config.prediction_length;
        let mut out = normalized;
        for (row, values) in out.chunks_mut(per_row.max(1)).enumerate() {
            let (loc, scale) = (patched.loc[row], patched.scale[row]);
            for v in values {
                *v = *v * scale + loc;
            }
        }
        Ok(out)
    }
}

/// `(B, T)` 0/1 mask → `(B, 1, 1, T)` additive f32 mask with `finfo(float32).min`, as
/// T5 builds it (a fully masked row then attends uniformly, as in the reference).
fn additive_key_mask(mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t) = mask.dims2()?;
    ((mask.to_dtype(DType::F32)? - 1.0)? * (-(f32::MIN as f64)))?.reshape((b, 1, 1, t))
}

/// `InstanceNorm` statistics of one row: mean and population std of the observed values;
/// `(0, 1)` when none is observed, scale `1e-5` when the std is 0.
pub fn instance_stats(row: &[f32]) -> (f32, f32) {
    let observed = row.iter().filter(|x| !x.is_nan());
    let count = observed.clone().count();
    if count == 0 {
        return (0.0, 1.0);
    }
    let loc = (observed.clone().map(|&x| x as f64).sum::<f64>() / count as f64) as f32;
    // Squares in f64: in f32 they overflow once values pass about 1.8e19.
    let variance = observed
        .map(|&x| {
            let d = f64::from(x) - f64::from(loc);
            d * d
        })
        .sum::<f64>()
        / count as f64;
    let scale = variance.sqrt() as f32;
    (loc, if scale == 0.0 { MIN_SCALE } else { scale })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Module};

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        crate::layers::test_tensor(shape, seed)
    }

    /// The fused feed-forward (RMSNorm kernel, stacked `wi_0 | wi_1`, gated kernel) against
    /// T5's definition in Candle's ops, for each activation a gated T5 config can name.
    #[test]
    fn gated_feed_forward_matches_t5() {
        let (d, ff) = (16, 24);
        let weights: HashMap<String, Tensor> = [
            ("layer_norm.weight", random(&[d], 1)),
            ("DenseReluDense.wi_0.weight", random(&[ff, d], 2)),
            ("DenseReluDense.wi_1.weight", random(&[ff, d], 3)),
            ("DenseReluDense.wo.weight", random(&[d, ff], 4)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let x = random(&[2, 5, d], 5);
        for (proj, act) in [
            ("gated-gelu", Activation::GeluTanh),
            ("gated-silu", Activation::Silu),
            ("gated-relu", Activation::Relu),
        ] {
            let cfg: Config = serde_json::from_value(serde_json::json!({
                "d_model": d, "d_ff": ff, "feed_forward_proj": proj,
                "chronos_config": {
                    "context_length": 32, "input_patch_size": 4, "input_patch_stride": 4,
                    "prediction_length": 4, "quantiles": [0.5]
                }
            }))
            .unwrap();
            assert!(cfg.gated());
            let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu);
            let block = T5FeedForward::load(vb, &cfg, act).unwrap();
            let got = block.forward(&x).unwrap();

            let inv_rms = (x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + 1e-6)
                .unwrap()
                .sqrt()
                .unwrap()
                .recip()
                .unwrap();
            let h = x
                .broadcast_mul(&inv_rms)
                .unwrap()
                .broadcast_mul(&weights["layer_norm.weight"])
                .unwrap();
            let linear = |name: &str, input: &Tensor| {
                candle_nn::Linear::new(weights[name].clone(), None)
                    .forward(input)
                    .unwrap()
            };
            let gate = act
                .forward(&linear("DenseReluDense.wi_0.weight", &h))
                .unwrap();
            let inner = (gate * linear("DenseReluDense.wi_1.weight", &h)).unwrap();
            let want = (&x + linear("DenseReluDense.wo.weight", &inner)).unwrap();
            let diff = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "{proj}: {diff}");
        }
    }
}
