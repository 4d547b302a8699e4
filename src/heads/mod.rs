//! Heads on top of encoder hidden states, shared by every paradigm.

pub mod normalize;
pub mod pooling;
pub mod projection;
pub mod splade;
