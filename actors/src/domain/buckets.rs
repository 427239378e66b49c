//! Time buckets for analytics series: `[from, to)` cut into hours, days, weeks (from
//! Monday) or months of an IANA time zone, so "per day" means the reader's days. The
//! figures are kept per UTC hour; each hour falls in the bucket its start lies in (exact
//! for every zone whose offset is a whole number of hours).

use chrono::{DateTime, FixedOffset, Utc};
use jiff::{Timestamp, ToSpan, ZonedDateTime, tz::TimeZone};

/// Most buckets in one series.
pub const MAX_BUCKETS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
    Week,
    Month,
}

/// Why a series cannot be cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketError {
    /// Not an IANA time zone name this host knows.
    UnknownZone(String),
    /// `to` is not after `from`.
    Empty,
    /// More than [`MAX_BUCKETS`].
    TooMany(usize),
    /// Out of the representable range.
    OutOfRange,
}

/// A time zone by IANA name (`UTC` always works).
pub fn zone(name: &str) -> Result<TimeZone, BucketError> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| BucketError::UnknownZone(name.to_owned()))
}

fn zoned(t: DateTime<Utc>, tz: &TimeZone) -> Result<ZonedDateTime, BucketError> {
    Timestamp::from_second(t.timestamp())
        .map(|ts| ts.to_zoned_datetime(tz.clone()))
        .map_err(|_| BucketError::OutOfRange)
}

/// The start of the bucket `z` lies in.
fn floor(z: &ZonedDateTime, bucket: Bucket) -> Result<ZonedDateTime, jiff::Error> {
    match bucket {
        Bucket::Hour => {
            let s = z.timestamp().as_second();
            Ok(Timestamp::from_second(s - s.rem_euclid(3600))?
                .to_zoned_datetime(z.time_zone().clone()))
        }
        Bucket::Day => z.start_of_day(),
        Bucket::Week => {
            let back = i64::from(z.weekday().to_monday_zero_offset());
            z.checked_sub(back.days())?.start_of_day()
        }
        Bucket::Month => z.first_of_month()?.start_of_day(),
    }
}

/// The start of the bucket after the one starting at `start`.
fn next(start: &ZonedDateTime, bucket: Bucket) -> Result<ZonedDateTime, jiff::Error> {
    match bucket {
        Bucket::Hour => Ok(start
            .timestamp()
            .checked_add(1.hour())?
            .to_zoned_datetime(start.time_zone().clone())),
        Bucket::Day => start.checked_add(1.day())?.start_of_day(),
        Bucket::Week => start.checked_add(1.week())?.start_of_day(),
        Bucket::Month => start.checked_add(1.month())?.start_of_day(),
    }
}

/// The whole buckets covering `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// Each bucket's start, as an instant with the zone's offset then: the first is the
    /// start of the bucket `from` lies in, the last begins before `to`.
    pub starts: Vec<DateTime<FixedOffset>>,
    /// The end of the last bucket.
    pub end: DateTime<Utc>,
}

/// The starts of the buckets covering `[from, to)` (see [`Buckets`]).
pub fn starts(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
    tz: &TimeZone,
) -> Result<Vec<DateTime<FixedOffset>>, BucketError> {
    cover(from, to, bucket, tz).map(|b| b.starts)
}

/// The whole buckets covering `[from, to)`.
pub fn cover(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
    tz: &TimeZone,
) -> Result<Buckets, BucketError> {
    if to <= from {
        return Err(BucketError::Empty);
    }
    let end = to.timestamp();
    let mut at = floor(&zoned(from, tz)?, bucket).map_err(|_| BucketError::OutOfRange)?;
    let mut out = Vec::new();
    while at.timestamp().as_second() < end {
        if out.len() == MAX_BUCKETS {
            // Count the rest only roughly: the answer is a refusal either way.
            return Err(BucketError::TooMany(MAX_BUCKETS + 1));
        }
        let offset = FixedOffset::east_opt(at.offset().seconds()).ok_or(BucketError::OutOfRange)?;
        let start = DateTime::from_timestamp(at.timestamp().as_second(), 0)
            .ok_or(BucketError::OutOfRange)?
            .with_timezone(&offset);
        out.push(start);
        at = next(&at, bucket).map_err(|_| BucketError::OutOfRange)?;
    }
    let end =
        DateTime::from_timestamp(at.timestamp().as_second(), 0).ok_or(BucketError::OutOfRange)?;
    Ok(Buckets { starts: out, end })
}

/// The index of the bucket (by its start, from [`starts`]) that `t` falls in, if any (what
/// the series' SQL computes; kept here to state it).
#[cfg(test)]
pub fn index_of(starts: &[DateTime<FixedOffset>], t: DateTime<Utc>) -> Option<usize> {
    let i = starts.partition_point(|s| *s <= t);
    i.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn days_are_the_zones_days() {
        let nairobi = zone("Africa/Nairobi").unwrap(); // UTC+3, no DST
        let s = starts(
            utc(2026, 3, 1, 12),
            utc(2026, 3, 3, 22),
            Bucket::Day,
            &nairobi,
        )
        .unwrap();
        let shown: Vec<String> = s.iter().map(|d| d.to_rfc3339()).collect();
        assert_eq!(
            shown,
            [
                "2026-03-01T00:00:00+03:00",
                "2026-03-02T00:00:00+03:00",
                "2026-03-03T00:00:00+03:00",
                "2026-03-04T00:00:00+03:00",
            ]
        );
        // 22:00 UTC on the 3rd is 01:00 on the 4th in Nairobi.
        assert_eq!(index_of(&s, utc(2026, 3, 3, 22)), Some(3));
        assert_eq!(index_of(&s, utc(2026, 3, 1, 12)), Some(0));
        assert_eq!(index_of(&s, utc(2026, 2, 28, 20)), None);
    }

    #[test]
    fn days_across_a_dst_change_keep_their_midnights() {
        let berlin = zone("Europe/Berlin").unwrap(); // clocks forward on 2026-03-29
        let s = starts(
            utc(2026, 3, 28, 12),
            utc(2026, 3, 30, 12),
            Bucket::Day,
            &berlin,
        )
        .unwrap();
        let shown: Vec<String> = s.iter().map(|d| d.to_rfc3339()).collect();
        assert_eq!(
            shown,
            [
                "2026-03-28T00:00:00+01:00",
                "2026-03-29T00:00:00+01:00",
                "2026-03-30T00:00:00+02:00",
            ]
        );
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let s = starts(
            utc(2026, 12, 3, 9),
            utc(2026, 12, 20, 0),
            Bucket::Week,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(s[0].to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(s.len(), 3);
        let s = starts(
            utc(2026, 1, 31, 9),
            utc(2026, 4, 1, 0),
            Bucket::Month,
            &TimeZone::UTC,
        )
        .unwrap();
        let shown: Vec<String> = s.iter().map(|d| d.to_rfc3339()).collect();
        assert_eq!(
            shown,
            [
                "2026-01-01T00:00:00+00:00",
                "2026-02-01T00:00:00+00:00",
                "2026-03-01T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            zone("Mars/Olympus_Mons").unwrap_err(),
            BucketError::UnknownZone("Mars/Olympus_Mons".into())
        );
        let t = utc(2026, 1, 1, 0);
        assert_eq!(
            starts(t, t, Bucket::Hour, &TimeZone::UTC).unwrap_err(),
            BucketError::Empty
        );
        let long = t + chrono::Duration::hours(1001);
        assert!(matches!(
            starts(t, long, Bucket::Hour, &TimeZone::UTC).unwrap_err(),
            BucketError::TooMany(_)
        ));
        assert_eq!(
            starts(
                t,
                t + chrono::Duration::hours(1000),
                Bucket::Hour,
                &TimeZone::UTC
            )
            .unwrap()
            .len(),
            1000
        );
    }
}
