//! Analytics: the figures data teams run their campaigns from, read from rollups the
//! database keeps exact in the transaction of every change (`store::rollups`), never
//! from a scan of the items; and the recount that rebuilds the rollups from the base
//! tables, one project at a time in that project's actor.

mod recount;
mod service;

pub use recount::{ProjectRecount, RecountReport};
pub use service::{
    AudioFigures, Figures, ItemStateFigures, ReviewFigures, SeriesPoint, SeriesQuery, SeriesView,
    StorageFigures, SummaryView, TopProject, UserFigures, VerdictTimes,
};

crate::handle::service!(
    /// The analytics part of the engine: summaries, series, leaderboards, recounts.
    AnalyticsService
);
