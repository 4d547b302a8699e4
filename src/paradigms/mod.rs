//! The embedders users call, one module per paradigm.

pub mod common;
pub mod dense;
pub mod multivector;
pub mod sparse;
pub mod timeseries;
pub mod vision;
