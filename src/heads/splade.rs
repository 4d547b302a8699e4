//! The SPLADE head (Formal et al., 2021, <https://arxiv.org/abs/2107.05720>): BERT's
//! masked-LM prediction head, then `log(1 + relu(logit))` max-pooled over each text's
//! tokens, as sentence-transformers' `MLMTransformer` + `SpladePooling(max, relu)`.

use candle_core::{Module, Tensor};
use candle_nn::{Activation, LayerNorm, Linear, VarBuilder};

use crate::error::{Result, TesseraError};
use crate::matrix::Matrix;
use crate::packing::Span;

/// Token rows whose logits exist at once: `[rows, vocab]` stays near 60 MB for a
/// 30522-word vocabulary instead of growing with the batch.
const LOGIT_ROWS: usize = 512;

/// Shape and naming facts the head needs from the model's `config.json`.
#[derive(Debug, Clone, Copy)]
pub struct SpladeHeadConfig {
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    /// `tie_word_embeddings` (absent = BERT's default, true).
    pub tie_word_embeddings: bool,
}

/// `cls.predictions.*` of a `BertForMaskedLM` checkpoint.
pub struct SpladeHead {
    transform: Linear,
    activation: Activation,
    layer_norm: LayerNorm,
    decoder: Linear,
    vocab_size: usize,
}

impl SpladeHead {
    /// Loads from the checkpoint's root VarBuilder; `word_embeddings [vocab, hidden]` is
    /// the decoder when it is tied (or stored without its own copy).
    pub fn load(vb: &VarBuilder, word_embeddings: &Tensor, cfg: &SpladeHeadConfig) -> Result<Self> {
        let head = vb.pp("cls").pp("predictions");
        let transform_vb = head.pp("transform");
        let transform =
            candle_nn::linear(cfg.hidden_size, cfg.hidden_size, transform_vb.pp("dense"))?;
        let layer_norm = candle_nn::layer_norm(
            cfg.hidden_size,
            cfg.layer_norm_eps,
            transform_vb.pp("LayerNorm"),
        )?;
        let decoder_vb = head.pp("decoder");
        // Transformers overwrites a stored decoder with the word embeddings when tied.
        let weight = if cfg.tie_word_embeddings || !decoder_vb.contains_tensor("weight") {
            if !cfg.tie_word_embeddings {
                return Err(TesseraError::Config(
                    "config.json sets tie_word_embeddings false but the checkpoint has no \
                     cls.predictions.decoder.weight"
                        .into(),
                ));
            }
            word_embeddings.clone()
        } else {
            decoder_vb.get((cfg.vocab_size, cfg.hidden_size), "weight")?
        };
        if weight.dims2()? != (cfg.vocab_size, cfg.hidden_size) {
            return Err(TesseraError::Config(format!(
                "MLM decoder is {:?}, expected [{}, {}]",
                weight.dims(),
                cfg.vocab_size,
                cfg.hidden_size
            )));
        }
        // `cls.predictions.bias` and `decoder.bias` are one tied parameter; either may be stored.
        let bias = if head.contains_tensor("bias") {
            head.get(cfg.vocab_size, "bias")?
        } else {
            decoder_vb.get(cfg.vocab_size, "bias")?
        };
        Ok(SpladeHead {
            transform,
            activation: cfg.hidden_act,
            layer_norm,
            decoder: Linear::new(weight, Some(bias)),
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
            .layer_norm
            .forward(&self.activation.forward(&self.transform.forward(hidden)?)?)?;
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
