//! Archives: items, archive metadata, manifest, and the create/extract pipelines.

pub mod patterns;
pub mod prune;
