//! The SPLADE head (Formal et al., 2021, <https://arxiv.org/abs/2107.05720>): the
//! encoder family's masked-LM prediction head, then `log(1 + relu(logit))` max-pooled over each text's
//! tokens, as sentence-transformers' `MLMTransformer` + `SpladePooling(max, relu)`.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::error::{Result, TesseraError};
use crate::layers::{Activation, Linear, Norm};
use crate::matrix::Matrix;
use crate::packing::Span;

/// Token rows whose logits exist at once: `[rows, vocab]` stays near 60 MB for a
/// 30522-word vocabulary instead of growing with the batch.
const LOGIT_ROWS: usize = 512;

/// Where a family's masked-LM head sits in its checkpoint, and how it is configured.
/// Every one is `decoder(norm(act(dense(x))))` with the decoder tied to the word
/// embeddings unless `tie_word_embeddings` is false.
#[derive(Debug, Clone)]
pub struct SpladeHeadConfig {
    pub hidden_size: usize,
    pub vocab_size: usize,
    /// `dense`, `norm` and `decoder` paths, and the stored names the decoder bias may have.
    dense: &'static str,
    norm: &'static str,
    decoder: &'static str,
    biases: &'static [&'static str],
    dense_bias: bool,
    norm_bias: bool,
    activation: Activation,
    eps: f64,
    tie_word_embeddings: bool,
}

impl SpladeHeadConfig {
    /// The head of the `model_type` family, from its `config.json`: BERT's
    /// `cls.predictions.*`, RoBERTa's `lm_head.*`, ModernBERT's `head.*` + `decoder.*`.
    pub fn for_model(
        model_type: &str,
        config: &Value,
        hidden_size: usize,
        vocab_size: usize,
    ) -> Result<Self> {
        let text = |key: &str, default: &str| {
            config
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        let number =
            |key: &str, default: f64| config.get(key).and_then(Value::as_f64).unwrap_or(default);
        let flag =
            |key: &str, default: bool| config.get(key).and_then(Value::as_bool).unwrap_or(default);
        let activation = |name: String| Activation::parse(&name).map_err(TesseraError::Config);
        let tie_word_embeddings = flag("tie_word_embeddings", true);
        let base = SpladeHeadConfig {
            hidden_size,
            vocab_size,
            dense: "cls.predictions.transform.dense",
            norm: "cls.predictions.transform.LayerNorm",
            decoder: "cls.predictions.decoder",
            biases: &["cls.predictions.bias", "cls.predictions.decoder.bias"],
            dense_bias: true,
            norm_bias: true,
            activation: Activation::GeluErf,
            eps: number("layer_norm_eps", 1e-12),
            tie_word_embeddings,
        };
        Ok(match model_type {
            "bert" => SpladeHeadConfig {
                activation: activation(text("hidden_act", "gelu"))?,
                ..base
            },
            // RobertaLMHead always applies the exact GELU.
            "xlm-roberta" | "roberta" => SpladeHeadConfig {
                dense: "lm_head.dense",
                norm: "lm_head.layer_norm",
                decoder: "lm_head.decoder",
                biases: &["lm_head.bias", "lm_head.decoder.bias"],
                eps: number("layer_norm_eps", 1e-5),
                ..base
            },
            "modernbert" => SpladeHeadConfig {
                dense: "head.dense",
                norm: "head.norm",
                decoder: "decoder",
                biases: if flag("decoder_bias", true) { &["decoder.bias"] } else { &[] },
                dense_bias: flag("classifier_bias", false),
                norm_bias: flag("norm_bias", false),
                activation: activation(text("classifier_activation", "gelu"))?,
                eps: number("norm_eps", 1e-5),
                ..base
            },
            other => {
                return Err(TesseraError::Config(format!(
                    "a SPLADE head on '{other}' is not supported (bert, xlm-roberta, roberta, modernbert)"
                )))
            }
        })
    }
}

/// A masked-LM prediction head turned into SPLADE term weights.
pub struct SpladeHead {
    transform: Linear,
    activation: Activation,
    norm: Norm,
    decoder: Linear,
    vocab_size: usize,
}

impl SpladeHead {
    /// Loads from the checkpoint's root VarBuilder; `word_embeddings [vocab, hidden]` is
    /// the decoder when it is tied (or stored without its own copy).
    pub fn load(vb: &VarBuilder, word_embeddings: &Tensor, cfg: &SpladeHeadConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let transform = Linear::load(vb.pp(cfg.dense), h, h, cfg.dense_bias)?;
        let norm = Norm::layer_norm(vb.pp(cfg.norm), h, cfg.eps, cfg.norm_bias)?;
        let decoder_vb = vb.pp(cfg.decoder);
        // Transformers overwrites a stored decoder with the word embeddings when tied.
        let weight = if cfg.tie_word_embeddings || !decoder_vb.contains_tensor("weight") {
            if !cfg.tie_word_embeddings {
                return Err(TesseraError::Config(format!(
                    "config.json sets tie_word_embeddings false but the checkpoint has no \
                     {}.weight",
                    cfg.decoder
                )));
            }
            word_embeddings.clone()
        } else {
            decoder_vb.get((cfg.vocab_size, h), "weight")?
        };
        if weight.dims2()? != (cfg.vocab_size, h) {
            return Err(TesseraError::Config(format!(
                "MLM decoder is {:?}, expected [{}, {h}]",
                weight.dims(),
                cfg.vocab_size,
            )));
        }
        // The head's bias and the decoder's are one tied parameter; either may be stored.
        let bias = match cfg.biases.iter().find(|name| vb.contains_tensor(name)) {
            Some(name) => Some(vb.get(cfg.vocab_size, name)?),
            None if cfg.biases.is_empty() => None,
            None => vb.get(cfg.vocab_size, cfg.biases[0]).map(Some)?,
        };
        Ok(SpladeHead {
            transform,
            activation: cfg.activation,
            norm,
            decoder: Linear::new(weight, bias)?,
            vocab_size: cfg.vocab_size,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Term weights `[texts, vocab]` of a packed batch: for each span, the max over its
    /// tokens of `log(1 + relu(logit))`. Every token of a span counts (the reference's
    /// attention mask is 1 on all of them, `[CLS]` and `[SEP]` included).
    pub fn forward(&self, hidden: &Tensor, spans: &[Span]) -> Result<Matrix> {
        let transformed = self
            .norm
            .forward(&self.transform.forward_activated(hidden, self.activation)?)?;
        let total = transformed.dim(0)?;
        let mut maxima: Vec<Option<Tensor>> = vec![None; spans.len()];
        let mut start = 0;
        while start < total {
            let rows = LOGIT_ROWS.min(total - start);
            let logits = self.decoder.forward(&transformed.narrow(0, start, rows)?)?;
            for (span, best) in spans.iter().zip(maxima.iter_mut()) {
                let lo = span.start.max(start);
                let hi = (span.start + span.len).min(start + rows);
                if lo >= hi {
                    continue;
                }
                let part = logits.narrow(0, lo - start, hi - lo)?.max_keepdim(0)?;
                *best = Some(match best.take() {
                    Some(previous) => previous.maximum(&part)?,
                    None => part,
                });
            }
            start += rows;
        }
        let rows = maxima
            .into_iter()
            .map(|best| match best {
                Some(row) => Ok(row),
                // An empty span has no tokens to activate any term.
                None => Tensor::zeros((1, self.vocab_size), hidden.dtype(), hidden.device()),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(Matrix::empty(self.vocab_size));
        }
        // One transfer to the host per batch. `log1p(relu(.))` is monotone, so it commutes
        // with the max: apply it once per term there, where `ln_1p` keeps small weights exact.
        let data: Vec<f32> = Tensor::cat(&rows, 0)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|x| x.max(0.0).ln_1p())
            .collect();
        Ok(Matrix {
            rows: spans.len(),
            cols: self.vocab_size,
            data,
        })
    }
}
