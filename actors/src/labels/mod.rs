//! Labelling: a project's label schema and items' annotations and suggestions. The
//! rules are in `domain::labels`; the writes are transitions run by the project's actor
//! (`transition`, `suggestions`); the reads are in `service`.

mod service;
mod suggestions;
mod transition;

pub use service::{
    Acceptance, AnnotationView, BULK_MAX, IfMatch, LabelSchemaView, NewSuggestion, SuggestionView,
};
pub(crate) use suggestions::{AcceptSuggestion, PutSuggestion};
pub(crate) use transition::{
    BulkAnnotate, PutAnnotation, PutLabelSchema, check_complete, write_annotation,
};

crate::handle::service!(
    /// The labelling part of the engine: schemas, annotations, suggestions.
    LabelService
);
