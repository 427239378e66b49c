//! How long review takes: the time from a round's submission to its verdict, counted in
//! buckets (`rollup_verdict_times`, migrations `0023_verdict_times`, whose SQL spells out
//! the same bounds). Buckets keep the summary's median and 90th percentile exact to the
//! bucket without a scan: a quantile is reported as the bound it does not exceed.

/// Upper bounds of the buckets, in seconds (1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h,
/// 8 h, 1 day, 2 days, 4 days, 7 days, 14 days, 30 days); one bucket more holds anything
/// longer.
pub const BOUNDS_SECONDS: [i64; 14] = [
    60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 345600, 604800, 1209600, 2592000,
];

/// How many buckets there are (the bounded ones and the open one).
pub const BUCKETS: usize = BOUNDS_SECONDS.len() + 1;

/// The bucket of a time of `seconds`.
pub fn bucket_of(seconds: f64) -> usize {
    BOUNDS_SECONDS
        .iter()
        .position(|&bound| seconds <= bound as f64)
        .unwrap_or(BOUNDS_SECONDS.len())
}

/// The upper bound of `bucket` (`None`: the open one, longer than the last bound).
pub fn bound_of(bucket: usize) -> Option<i64> {
    BOUNDS_SECONDS.get(bucket).copied()
}

/// Where the `q`-quantile (0 < q <= 1) of these per-bucket counts falls: its bucket's
/// upper bound. `None` when nothing is counted or it falls in the open bucket.
pub fn quantile_at_most(counts: &[i64; BUCKETS], q: f64) -> Option<i64> {
    let total: i64 = counts.iter().sum();
    if total <= 0 {
        return None;
    }
    // The rank of the quantile, 1-based: the smallest count that covers q of the total.
    let rank = ((q * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (bucket, &n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return bound_of(bucket);
        }
    }
    None
}

/// The SQL that computes the bucket of `seconds` (an expression), for the dialects
/// without the migration's function (SQLite).
pub fn bucket_sql(seconds: &str) -> String {
    let arms: Vec<String> = BOUNDS_SECONDS
        .iter()
        .enumerate()
        .map(|(i, b)| format!("WHEN {seconds} <= {b} THEN {i}"))
        .collect();
    format!("CASE {} ELSE {} END", arms.join(" "), BOUNDS_SECONDS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_closed_above() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(60.0), 0);
        assert_eq!(bucket_of(60.5), 1);
        assert_eq!(bucket_of(2_592_000.0), 13);
        assert_eq!(bucket_of(2_592_001.0), 14);
        assert_eq!(bound_of(14), None);
    }

    #[test]
    fn quantiles_name_the_bucket_they_fall_in() {
        let mut counts = [0i64; BUCKETS];
        assert_eq!(quantile_at_most(&counts, 0.5), None);
        counts[0] = 5; // <= 1 min
        counts[4] = 4; // <= 1 h
        counts[8] = 1; // <= 1 day
        assert_eq!(quantile_at_most(&counts, 0.5), Some(60));
        assert_eq!(quantile_at_most(&counts, 0.6), Some(3600));
        assert_eq!(quantile_at_most(&counts, 0.9), Some(3600));
        assert_eq!(quantile_at_most(&counts, 1.0), Some(86400));
        counts[14] = 90;
        assert_eq!(quantile_at_most(&counts, 0.9), None);
    }

    #[test]
    fn the_sql_matches_the_function() {
        let sql = bucket_sql("x");
        assert!(
            sql.starts_with("CASE WHEN x <= 60 THEN 0 WHEN x <= 300 THEN 1"),
            "{sql}"
        );
        assert!(
            sql.ends_with("WHEN x <= 2592000 THEN 13 ELSE 14 END"),
            "{sql}"
        );
    }
}
