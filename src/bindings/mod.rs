//! Language bindings. Only this folder knows about Python.

pub mod python;
