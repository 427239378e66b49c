//! Labelling as the engine serves it: reads of a project's label schema and of an
//! item's annotation. The rules are in `domain::labels`; the writes are the project
//! actor's transitions (`projects::labels`).

mod service;

pub use service::{
    Acceptance, AnnotationView, BULK_MAX, IfMatch, LabelSchemaView, NewSuggestion, SuggestionView,
};
