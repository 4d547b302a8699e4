//! Model architectures. Each returns hidden states only; pooling, projection and
//! the SPLADE head live in `heads/`.

pub mod bert;
pub mod checkpoint;
pub mod chronos_bolt;
pub mod colpali;
mod cpu_kernels;
pub mod gemma;
pub mod siglip;
