//! The rules of labelling: a label schema's fields and their checks, an annotation's
//! values checked against them, and what a schema change would take from annotations
//! that exist. Pure: no store, no actor.

pub mod carry;
pub mod schema;
pub mod suggest;
pub mod usage;
pub mod values;

pub use schema::{FieldInput, FieldType, LabelField};
