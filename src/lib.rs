//! Tessera: embedding and forecasting models run locally on Candle.
//!
//! The pipeline is `registry` (ids) → `hub` (files) → `models` + `heads` → `paradigms`
//! (the embedders); `bindings` exposes them to Python when the `python` feature is on.

pub mod detect;
pub mod device;
pub mod encoder;
pub mod error;
pub mod heads;
pub mod hub;
pub mod interrupt;
pub mod layers;
pub mod layout;
pub mod matrix;
pub mod models;
pub mod packing;
pub mod paradigms;
pub mod pooling;
pub mod progress;
pub mod quantization;
pub mod registry;
pub mod similarity;
pub mod text;
pub mod threads;
pub mod vision;

#[cfg(feature = "python")]
pub mod bindings;

pub use device::{DType, Device, Quantize};
pub use error::{Result, TesseraError};
pub use matrix::Matrix;
pub use paradigms::common::EncodeOptions;
pub use paradigms::dense::{DenseBuilder, DenseEmbedder};
pub use paradigms::multivector::{
    ColbertLayout, MultiVectorBuilder, MultiVectorEmbedder, TokenEmbeddings,
};
pub use paradigms::sparse::{SparseBuilder, SparseEmbedder, SparseVector};
pub use paradigms::timeseries::{
    Forecast, SeriesEmbeddings, TimeSeriesBuilder, TimeSeriesForecaster,
};
pub use paradigms::vision::{VisionBuilder, VisionEmbedder};
pub use quantization::{
    quantize, quantize_embeddings, Precision, QuantizationConfig, QuantizedArray,
    QuantizedEmbeddings,
};
pub use registry::{list_models, ModelSpec, Paradigm, PoolingKind};
pub use vision::{ImageInput, MAX_IMAGE_PIXELS};
