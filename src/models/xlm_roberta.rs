//! XLM-RoBERTa (Conneau et al., 2020, <https://arxiv.org/abs/1911.02116>): BERT's
//! encoder with RoBERTa's position ids, which start after the padding id and skip
//! padding tokens. Serves snowflake-arctic-embed-l-v2.0, bge-m3 and multilingual-e5.

use candle_nn::VarBuilder;

use super::bert::{BertModel, Config, Positions};
use crate::error::Result;

/// Loads an XLM-RoBERTa (or RoBERTa) encoder; `config.json` has BERT's field names.
pub fn load(vb: VarBuilder, cfg: &Config) -> Result<BertModel> {
    let pad = cfg.pad_token_id.unwrap_or(1);
    BertModel::load_with_positions(vb, cfg, Positions::Roberta { pad })
}
