//! The embedders users call, one module per paradigm.

pub mod common;
pub mod dense;
