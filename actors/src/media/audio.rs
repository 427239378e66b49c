//! What is in a recording: probe and decode an audio file once, streaming, with symphonia 0.6.
//!
//! [`analyse`] is synchronous and CPU-bound; callers run it on a blocking thread. It never holds
//! more than one decoded packet in memory, checks a deadline every packet and stops as soon as
//! the running duration passes the limit.
//!
//! Levels are measured on the decoded samples converted to `f32` in `[-1, 1]` (0 dBFS = full
//! scale), over all channels:
//! - peak: max |x|; RMS: sqrt(mean x²); both in dBFS, floored at [`DBFS_FLOOR`] for silence;
//! - clipping ratio: fraction of samples with |x| >= [`CLIP_THRESHOLD`];
//! - leading / trailing silence: time before the first / after the last frame in which some
//!   channel has |x| > [`SILENCE_THRESHOLD`] (-50 dBFS). An all-silent file has both equal to
//!   its duration.
//!
//! Codecs without a decoder here (Opus, for instance) are not refused: the result has
//! `decoded = false`, no levels, and a duration taken from the container (declared length, or
//! the span of the demuxed packets' timestamps).

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::well_known::{
    CODEC_ID_AAC, CODEC_ID_AC3, CODEC_ID_ALAC, CODEC_ID_EAC3, CODEC_ID_FLAC, CODEC_ID_MP1,
    CODEC_ID_MP2, CODEC_ID_MP3, CODEC_ID_OPUS, CODEC_ID_SPEEX, CODEC_ID_VORBIS, CODEC_ID_WAVPACK,
    CODEC_ID_WMA,
};
use symphonia::core::codecs::audio::{
    AudioCodecId, AudioCodecParameters, AudioDecoder, AudioDecoderOptions,
};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, MediaInfo, Track, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::{Duration as TsDuration, TimeBase};

/// |x| above this (-50 dBFS) is sound; at or below it, silence.
pub const SILENCE_THRESHOLD: f32 = 0.003_162_278;
/// |x| at or above this counts as a clipped sample.
pub const CLIP_THRESHOLD: f32 = 0.999;
/// dBFS reported for digital silence instead of -infinity.
pub const DBFS_FLOOR: f64 = -120.0;
/// At most this many corrupt packets are tolerated (and fewer than 1% of all packets).
const MAX_DECODE_ERRORS: u64 = 10;

/// What an audio file contains. Serialised as-is on the item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioAnalysis {
    /// Short, stable codec name: "pcm_s16le", "flac", "mp3", "vorbis", "aac", "alac", "opus", ...
    pub codec: String,
    /// Hz; from the decoder output when decoded, else from the container (0 if it does not say).
    pub sample_rate: u32,
    /// From the decoder output when decoded, else from the container (0 if it does not say).
    pub channels: u16,
    /// From the decoded frames when decoded; else from the container.
    pub duration_seconds: f64,
    /// False when there is no decoder for the codec here (e.g. Opus): levels are then `None`.
    pub decoded: bool,
    /// Max |sample| over all channels, in dBFS.
    pub peak_dbfs: Option<f64>,
    /// RMS over all samples of all channels, in dBFS.
    pub rms_dbfs: Option<f64>,
    /// Fraction of samples (all channels) with |x| >= 0.999 full scale.
    pub clipping_ratio: Option<f64>,
    /// Time before the first frame above -50 dBFS.
    pub leading_silence_seconds: Option<f64>,
    /// Time after the last frame above -50 dBFS.
    pub trailing_silence_seconds: Option<f64>,
}

/// Why a file could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// No format or audio track recognised, a corrupt or truncated stream, or nothing decoded.
    #[error("undecodable audio: {0}")]
    Undecodable(String),
    /// Longer than allowed. `seconds` is the container's declared duration when it says more,
    /// else how far decoding got before it stopped (just over the limit).
    #[error("audio is too long: {seconds:.1} s (the limit is {max_seconds:.1} s)")]
    TooLong { seconds: f64, max_seconds: f64 },
    /// The deadline in [`Limits`] passed before the analysis finished.
    #[error("audio analysis took too long")]
    TimedOut,
    /// The file could not be opened or read (an operating-system error, not bad content).
    #[error("i/o error while analysing audio: {0}")]
    Io(#[from] std::io::Error),
}

impl AudioError {
    /// Stable error code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            AudioError::Undecodable(_) => "undecodable_audio",
            AudioError::TooLong { .. } => "audio_too_long",
            AudioError::TimedOut => "audio_analysis_timeout",
            AudioError::Io(_) => "io_error",
        }
    }
}

/// Bounds on one analysis.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest accepted recording, in seconds.
    pub max_seconds: f64,
    /// Give up with [`AudioError::TimedOut`] once this instant has passed.
    pub deadline: Instant,
}

/// Probe and decode the whole file once, streaming (constant memory), computing the numbers of
/// [`AudioAnalysis`]. `extension_hint` ("wav", "mp3", ...) helps the probe.
///
/// A panic inside the decoder (a symphonia bug on hostile input) is caught and reported as
/// [`AudioError::Undecodable`].
pub fn analyse(
    path: &Path,
    extension_hint: Option<&str>,
    limits: &Limits,
) -> Result<AudioAnalysis, AudioError> {
    match catch_unwind(AssertUnwindSafe(|| {
        analyse_inner(path, extension_hint, limits)
    })) {
        Ok(result) => result,
        Err(_) => Err(AudioError::Undecodable(
            "the decoder failed on this file".to_owned(),
        )),
    }
}

fn analyse_inner(
    path: &Path,
    extension_hint: Option<&str>,
    limits: &Limits,
) -> Result<AudioAnalysis, AudioError> {
    check_deadline(limits)?;
    let file = File::open(path)?;
    let mss = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());

    let mut hint = Hint::new();
    if let Some(ext) = extension_hint {
        let ext = ext.trim().trim_start_matches('.').to_ascii_lowercase();
        if !ext.is_empty() {
            hint.with_extension(&ext);
        }
    }

    let reader = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| from_symphonia(e, "not a recognised audio format"))?;
    check_deadline(limits)?;

    let track = pick_track(reader.as_ref())
        .ok_or_else(|| AudioError::Undecodable("the file has no audio track".to_owned()))?;
    let params = audio_params(&track)?;

    if symphonia::default::get_codecs()
        .get_audio_decoder(params.codec)
        .is_none()
    {
        return analyse_undecoded(reader, track, &params, limits);
    }
    match make_decoder(&params) {
        Ok(decoder) => analyse_decoded(reader, track, decoder, limits),
        // A decoder exists for the codec but not for this variant of it (a profile or feature
        // it does not implement): same as having no decoder.
        Err(SymphoniaError::Unsupported(_)) => analyse_undecoded(reader, track, &params, limits),
        Err(e) => Err(from_symphonia(e, "cannot set up the decoder")),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoded path
// ---------------------------------------------------------------------------------------------

fn analyse_decoded(
    mut reader: Box<dyn FormatReader + '_>,
    mut track: Track,
    mut decoder: Box<dyn AudioDecoder>,
    limits: &Limits,
) -> Result<AudioAnalysis, AudioError> {
    let codec = codec_name(
        decoder.codec_params().codec,
        Some(decoder.codec_info().short_name),
    );
    let fallback_rate = decoder.codec_params().sample_rate;
    let fallback_channels = decoder.codec_params().channels.as_ref().map(|c| c.count());
    let declared = declared_seconds(&track, reader.media_info());

    let mut stats = Levels::default();
    let mut scratch: Vec<f32> = Vec::new();
    let mut packets: u64 = 0;
    let mut errors: u64 = 0;

    loop {
        check_deadline(limits)?;
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::ResetRequired) => {
                // A new chained stream (Ogg): re-examine the tracks and start a new decoder.
                track = pick_track(reader.as_ref()).ok_or_else(|| {
                    AudioError::Undecodable("a chained stream has no audio track".to_owned())
                })?;
                decoder = make_decoder(&audio_params(&track)?)
                    .map_err(|e| from_symphonia(e, "cannot decode a chained stream"))?;
                continue;
            }
            // A container that does not declare its length (a WAV written as a stream) can
            // only end this way; one that declared it is truncated.
            Err(SymphoniaError::IoError(e))
                if is_eof(&e) && !length_declared(&track) && stats.total_frames > 0 =>
            {
                break;
            }
            Err(e) => return Err(from_symphonia(e, "the audio stream is damaged")),
        };
        if packet.track_id != track.id {
            continue;
        }
        packets += 1;

        let mut reset = false;
        match decoder.decode(&packet) {
            Ok(buf) => stats.add(&buf, &mut scratch)?,
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_)) => {
                errors += 1;
                if errors > MAX_DECODE_ERRORS {
                    return Err(AudioError::Undecodable(format!(
                        "too many corrupt packets (more than {MAX_DECODE_ERRORS})"
                    )));
                }
            }
            Err(SymphoniaError::ResetRequired) => reset = true,
            Err(e) => return Err(from_symphonia(e, "cannot decode the audio")),
        }
        if reset {
            decoder.reset();
        }

        let seconds = stats.seconds();
        if seconds > limits.max_seconds {
            return Err(too_long(seconds, declared, limits));
        }
    }

    if stats.total_frames == 0 {
        return Err(AudioError::Undecodable(
            "no audio could be decoded".to_owned(),
        ));
    }
    if errors > 0 && errors.saturating_mul(100) >= packets {
        return Err(AudioError::Undecodable(format!(
            "too many corrupt packets ({errors} of {packets})"
        )));
    }

    let duration = stats.seconds();
    let (leading, trailing) = match (stats.first_loud, stats.last_loud_end) {
        (Some(first), Some(end)) => (first, (duration - end).max(0.0)),
        _ => (duration, duration),
    };
    let samples = stats.samples.max(1) as f64;
    Ok(AudioAnalysis {
        codec,
        sample_rate: stats.sample_rate.or(fallback_rate).unwrap_or(0),
        channels: to_u16(stats.channels.or(fallback_channels).unwrap_or(0)),
        duration_seconds: duration,
        decoded: true,
        peak_dbfs: Some(to_dbfs(f64::from(stats.peak))),
        rms_dbfs: Some(to_dbfs((stats.sum_sq / samples).sqrt())),
        clipping_ratio: Some(stats.clipped as f64 / samples),
        leading_silence_seconds: Some(leading),
        trailing_silence_seconds: Some(trailing),
    })
}

/// Running measurements over the decoded audio. Positions are kept in seconds so that a
/// sample-rate change (chained streams) does not break them; within a stretch of constant
/// rate they are computed from integer frame counts.
#[derive(Default)]
struct Levels {
    sample_rate: Option<u32>,
    channels: Option<usize>,
    peak: f32,
    sum_sq: f64,
    samples: u64,
    clipped: u64,
    total_frames: u64,
    /// Seconds in earlier stretches with a different sample rate.
    done_seconds: f64,
    seg_rate: u32,
    seg_frames: u64,
    /// Start of the first loud frame, in seconds.
    first_loud: Option<f64>,
    /// End of the last loud frame, in seconds.
    last_loud_end: Option<f64>,
}

impl Levels {
    fn seconds(&self) -> f64 {
        if self.seg_rate == 0 {
            self.done_seconds
        } else {
            self.done_seconds + self.seg_frames as f64 / f64::from(self.seg_rate)
        }
    }

    fn add(
        &mut self,
        buf: &GenericAudioBufferRef<'_>,
        scratch: &mut Vec<f32>,
    ) -> Result<(), AudioError> {
        let frames = buf.frames();
        let planes = buf.num_planes();
        if frames == 0 || planes == 0 {
            return Ok(());
        }
        let rate = buf.spec().rate();
        if rate == 0 {
            return Err(AudioError::Undecodable(
                "the stream has a sample rate of 0".to_owned(),
            ));
        }
        if self.sample_rate.is_none() {
            self.sample_rate = Some(rate);
            let count = buf.spec().channels().count();
            self.channels = Some(if count == 0 { planes } else { count });
        }
        if rate != self.seg_rate {
            self.done_seconds = self.seconds();
            self.seg_rate = rate;
            self.seg_frames = 0;
        }

        buf.copy_to_vec_interleaved(scratch);

        let mut peak = self.peak;
        let mut sum_sq = 0.0f64;
        let mut clipped = 0u64;
        let mut first_loud: Option<usize> = None;
        let mut last_loud: Option<usize> = None;
        for (i, frame) in scratch.chunks_exact(planes).enumerate() {
            let mut frame_max = 0.0f32;
            for &sample in frame {
                // NaN or infinity (float PCM) carries no level; count it as silence.
                let a = if sample.is_finite() {
                    sample.abs()
                } else {
                    0.0
                };
                frame_max = frame_max.max(a);
                sum_sq += f64::from(a) * f64::from(a);
                if a >= CLIP_THRESHOLD {
                    clipped += 1;
                }
            }
            peak = peak.max(frame_max);
            if frame_max > SILENCE_THRESHOLD {
                if first_loud.is_none() {
                    first_loud = Some(i);
                }
                last_loud = Some(i);
            }
        }

        let base = self.seg_frames;
        let at = |frame: u64| self.done_seconds + frame as f64 / f64::from(rate);
        if self.first_loud.is_none()
            && let Some(i) = first_loud
        {
            self.first_loud = Some(at(base + i as u64));
        }
        if let Some(i) = last_loud {
            self.last_loud_end = Some(at(base + i as u64 + 1));
        }

        self.peak = peak;
        self.sum_sq += sum_sq;
        self.clipped += clipped;
        self.samples += (frames * planes) as u64;
        self.total_frames += frames as u64;
        self.seg_frames += frames as u64;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Undecoded path (no decoder for the codec)
// ---------------------------------------------------------------------------------------------

fn analyse_undecoded(
    mut reader: Box<dyn FormatReader + '_>,
    mut track: Track,
    params: &AudioCodecParameters,
    limits: &Limits,
) -> Result<AudioAnalysis, AudioError> {
    let codec = codec_name(params.codec, None);
    let sample_rate = params.sample_rate.unwrap_or(0);
    let channels = to_u16(params.channels.as_ref().map(|c| c.count()).unwrap_or(0));
    let mut declared = declared_seconds(&track, reader.media_info());
    if let Some(seconds) = declared
        && seconds > limits.max_seconds
    {
        return Err(too_long(seconds, declared, limits));
    }

    // Demux the whole stream anyway: it proves the container is intact, and gives the length
    // when the container does not declare it (WebM from a browser's MediaRecorder, typically).
    let mut done_seconds = 0.0f64;
    let mut span = PacketSpan::default();
    let mut packets: u64 = 0;
    loop {
        check_deadline(limits)?;
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::ResetRequired) => {
                done_seconds += span.seconds(track.time_base).unwrap_or(0.0);
                span = PacketSpan::default();
                // The declared length covered the first stream of the chain only.
                declared = None;
                track = pick_track(reader.as_ref()).ok_or_else(|| {
                    AudioError::Undecodable("a chained stream has no audio track".to_owned())
                })?;
                continue;
            }
            Err(SymphoniaError::IoError(e))
                if is_eof(&e) && !length_declared(&track) && packets > 0 =>
            {
                break;
            }
            Err(e) => return Err(from_symphonia(e, "the audio stream is damaged")),
        };
        if packet.track_id != track.id {
            continue;
        }
        packets += 1;
        span.add(packet.pts.get(), packet.dur.get());
        let seconds = done_seconds + span.seconds(track.time_base).unwrap_or(0.0);
        if seconds > limits.max_seconds {
            return Err(too_long(seconds, declared, limits));
        }
    }

    if packets == 0 {
        return Err(AudioError::Undecodable(
            "the audio track is empty".to_owned(),
        ));
    }
    let measured = done_seconds + span.seconds(track.time_base).unwrap_or(0.0);
    let duration = match declared {
        Some(seconds) if seconds > 0.0 => seconds,
        _ if measured > 0.0 => measured,
        _ => {
            return Err(AudioError::Undecodable(format!(
                "the length of the {codec} audio is unknown"
            )));
        }
    };

    Ok(AudioAnalysis {
        codec,
        sample_rate,
        channels,
        duration_seconds: duration,
        decoded: false,
        peak_dbfs: None,
        rms_dbfs: None,
        clipping_ratio: None,
        leading_silence_seconds: None,
        trailing_silence_seconds: None,
    })
}

/// The time covered by a track's packets, from their timestamps (in the track's time base).
#[derive(Default)]
struct PacketSpan {
    start: Option<i64>,
    end: Option<i64>,
    last_pts: Option<i64>,
    last_gap: i64,
}

impl PacketSpan {
    fn add(&mut self, pts: i64, dur: u64) {
        if let Some(last) = self.last_pts
            && pts > last
        {
            self.last_gap = pts - last;
        }
        self.last_pts = Some(pts);
        // Some containers (Matroska without block durations) give packets no duration: assume
        // it lasts as long as the gap before it.
        let dur = if dur == 0 {
            self.last_gap
        } else {
            i64::try_from(dur).unwrap_or(i64::MAX)
        };
        // Negative timestamps are encoder delay, not content.
        let start = pts.max(0);
        self.start = Some(self.start.map_or(start, |s| s.min(start)));
        let end = pts.saturating_add(dur);
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
    }

    fn seconds(&self, time_base: Option<TimeBase>) -> Option<f64> {
        let (start, end, tb) = (self.start?, self.end?, time_base?);
        let ticks = u64::try_from(end.saturating_sub(start)).ok()?;
        tb.calc_duration(TsDuration::new(ticks))
            .map(|t| t.as_secs_f64())
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn check_deadline(limits: &Limits) -> Result<(), AudioError> {
    if Instant::now() >= limits.deadline {
        Err(AudioError::TimedOut)
    } else {
        Ok(())
    }
}

fn too_long(running: f64, declared: Option<f64>, limits: &Limits) -> AudioError {
    let seconds = declared.filter(|d| *d > running).unwrap_or(running);
    AudioError::TooLong {
        seconds,
        max_seconds: limits.max_seconds,
    }
}

/// The default audio track (flagged default, else the first with a known codec), else the
/// first audio track at all.
fn pick_track(reader: &dyn FormatReader) -> Option<Track> {
    reader
        .default_track(TrackType::Audio)
        .or_else(|| reader.first_track(TrackType::Audio))
        .cloned()
}

fn audio_params(track: &Track) -> Result<AudioCodecParameters, AudioError> {
    track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| {
            AudioError::Undecodable("the audio track has no codec parameters".to_owned())
        })
}

fn make_decoder(
    params: &AudioCodecParameters,
) -> symphonia::core::errors::Result<Box<dyn AudioDecoder>> {
    symphonia::default::get_codecs().make_audio_decoder(params, &AudioDecoderOptions::default())
}

/// Whether the container states the track's length (so running out of bytes means truncation).
fn length_declared(track: &Track) -> bool {
    track.num_frames.is_some() || track.duration.is_some()
}

fn is_eof(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::UnexpectedEof
}

/// The length the container declares for the track, if any.
fn declared_seconds(track: &Track, media: &MediaInfo) -> Option<f64> {
    let from_tb = |tb: Option<TimeBase>, dur: Option<TsDuration>| {
        tb.zip(dur)
            .and_then(|(tb, dur)| tb.calc_duration(dur))
            .map(|t| t.as_secs_f64())
    };
    let rate = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .and_then(|p| p.sample_rate)
        .filter(|r| *r > 0);
    let track_seconds = from_tb(track.time_base, track.duration).or_else(|| {
        track
            .num_frames
            .zip(rate)
            .map(|(frames, rate)| frames as f64 / f64::from(rate))
    });
    if let Some(seconds) = track_seconds {
        // The track's length counts the encoder delay (Opus pre-skip in Ogg); the content
        // does not.
        let delay = track
            .delay
            .zip(rate)
            .map_or(0.0, |(d, r)| f64::from(d) / f64::from(r));
        return Some((seconds - delay).max(0.0));
    }
    from_tb(media.time_base, media.duration)
}

/// Short, stable codec name: the decoder's own short name when there is one, else a fixed name
/// for well-known codecs.
fn codec_name(id: AudioCodecId, decoder_name: Option<&str>) -> String {
    if let Some(name) = decoder_name {
        return name.to_owned();
    }
    if let Some(registered) = symphonia::default::get_codecs().get_audio_decoder(id) {
        return registered.codec.info.short_name.to_owned();
    }
    let name = match id {
        CODEC_ID_OPUS => "opus",
        CODEC_ID_VORBIS => "vorbis",
        CODEC_ID_SPEEX => "speex",
        CODEC_ID_FLAC => "flac",
        CODEC_ID_MP1 => "mp1",
        CODEC_ID_MP2 => "mp2",
        CODEC_ID_MP3 => "mp3",
        CODEC_ID_AAC => "aac",
        CODEC_ID_ALAC => "alac",
        CODEC_ID_AC3 => "ac3",
        CODEC_ID_EAC3 => "eac3",
        CODEC_ID_WAVPACK => "wavpack",
        CODEC_ID_WMA => "wma",
        _ => "unknown",
    };
    name.to_owned()
}

/// Map a symphonia error to ours. Operating-system IO errors stay IO errors; everything else
/// (malformed data, unexpected end of file, unsupported features, limits) means the content
/// cannot be decoded.
fn from_symphonia(err: SymphoniaError, context: &str) -> AudioError {
    match err {
        SymphoniaError::IoError(e) if e.raw_os_error().is_some() => AudioError::Io(e),
        SymphoniaError::IoError(e) if is_eof(&e) => AudioError::Undecodable(format!(
            "{context}: the file ends unexpectedly (truncated?)"
        )),
        other => AudioError::Undecodable(format!("{context}: {other}")),
    }
}

fn to_dbfs(amplitude: f64) -> f64 {
    if amplitude > 0.0 {
        (20.0 * amplitude.log10()).max(DBFS_FLOOR)
    } else {
        DBFS_FLOOR
    }
}

fn to_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;
    use std::path::PathBuf;
    use std::time::Duration;
    use tempfile::TempDir;

    fn limits() -> Limits {
        Limits {
            max_seconds: 3600.0,
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    /// A canonical 44-byte-header WAV: 16-bit PCM, interleaved `samples`. `declared_data_len`
    /// overrides the data length written in the header (truncated or streamed files).
    fn wav_bytes(
        rate: u32,
        channels: u16,
        samples: &[i16],
        declared_data_len: Option<u32>,
    ) -> Vec<u8> {
        let block_align = channels * 2;
        let data_len = declared_data_len.unwrap_or((samples.len() * 2) as u32);
        let mut out = Vec::with_capacity(44 + samples.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
        out.extend_from_slice(&block_align.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `seconds` of a sine at `freq` Hz and `amplitude` (fraction of full scale), one value per
    /// frame, repeated on every channel.
    fn tone(rate: u32, channels: u16, seconds: f64, freq: f64, amplitude: f64) -> Vec<i16> {
        let frames = (seconds * f64::from(rate)).round() as usize;
        let mut out = Vec::with_capacity(frames * usize::from(channels));
        for i in 0..frames {
            let t = i as f64 / f64::from(rate);
            let v = (amplitude * 32767.0 * (2.0 * PI * freq * t).sin()).round() as i16;
            for _ in 0..channels {
                out.push(v);
            }
        }
        out
    }

    fn silence(rate: u32, channels: u16, seconds: f64) -> Vec<i16> {
        vec![0; (seconds * f64::from(rate)).round() as usize * usize::from(channels)]
    }

    fn sine_file(dir: &TempDir) -> PathBuf {
        let samples = tone(22050, 1, 1.5, 440.0, 0.5);
        write(dir, "sine.wav", &wav_bytes(22050, 1, &samples, None))
    }

    #[test]
    fn sine_levels_and_format() {
        let dir = TempDir::new().unwrap();
        let path = sine_file(&dir);
        let a = analyse(&path, Some("wav"), &limits()).unwrap();
        assert_eq!(a.codec, "pcm_s16le");
        assert_eq!(a.sample_rate, 22050);
        assert_eq!(a.channels, 1);
        assert!(a.decoded);
        assert!(
            (a.duration_seconds - 1.5).abs() < 0.01,
            "duration {}",
            a.duration_seconds
        );
        let peak = a.peak_dbfs.unwrap();
        let rms = a.rms_dbfs.unwrap();
        assert!((peak - -6.02).abs() < 0.1, "peak {peak}");
        assert!((rms - -9.03).abs() < 0.1, "rms {rms}");
        assert_eq!(a.clipping_ratio, Some(0.0));
        assert!(a.leading_silence_seconds.unwrap() < 0.01);
        assert!(a.trailing_silence_seconds.unwrap() < 0.01);
    }

    #[test]
    fn works_without_extension_hint() {
        let dir = TempDir::new().unwrap();
        let samples = tone(22050, 1, 1.5, 440.0, 0.5);
        let path = write(&dir, "upload.bin", &wav_bytes(22050, 1, &samples, None));
        let a = analyse(&path, None, &limits()).unwrap();
        assert!((a.duration_seconds - 1.5).abs() < 0.01);
    }

    #[test]
    fn leading_and_trailing_silence_stereo() {
        let dir = TempDir::new().unwrap();
        let rate = 44100;
        let mut samples = silence(rate, 2, 0.5);
        samples.extend(tone(rate, 2, 1.0, 440.0, 0.5));
        samples.extend(silence(rate, 2, 0.25));
        let path = write(&dir, "gaps.wav", &wav_bytes(rate, 2, &samples, None));
        let a = analyse(&path, Some("wav"), &limits()).unwrap();
        assert_eq!(a.channels, 2);
        assert_eq!(a.sample_rate, 44100);
        assert!(
            (a.duration_seconds - 1.75).abs() < 0.01,
            "duration {}",
            a.duration_seconds
        );
        let lead = a.leading_silence_seconds.unwrap();
        let trail = a.trailing_silence_seconds.unwrap();
        assert!((lead - 0.5).abs() < 0.01, "leading {lead}");
        assert!((trail - 0.25).abs() < 0.01, "trailing {trail}");
    }

    #[test]
    fn all_silent_file() {
        let dir = TempDir::new().unwrap();
        let path = write(
            &dir,
            "quiet.wav",
            &wav_bytes(8000, 1, &silence(8000, 1, 1.0), None),
        );
        let a = analyse(&path, Some("wav"), &limits()).unwrap();
        assert_eq!(a.peak_dbfs, Some(DBFS_FLOOR));
        assert_eq!(a.rms_dbfs, Some(DBFS_FLOOR));
        assert_eq!(a.leading_silence_seconds, Some(a.duration_seconds));
        assert_eq!(a.trailing_silence_seconds, Some(a.duration_seconds));
    }

    #[test]
    fn full_scale_square_wave_clips() {
        let dir = TempDir::new().unwrap();
        let samples: Vec<i16> = (0..44100)
            .map(|i| {
                if (i / 50) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let path = write(&dir, "square.wav", &wav_bytes(44100, 1, &samples, None));
        let a = analyse(&path, Some("wav"), &limits()).unwrap();
        assert!(
            a.clipping_ratio.unwrap() > 0.9,
            "clipping {:?}",
            a.clipping_ratio
        );
        assert!(a.peak_dbfs.unwrap() > -0.01);
    }

    #[test]
    fn garbage_is_undecodable() {
        let dir = TempDir::new().unwrap();
        let bytes = b"this is certainly not a recording, just text. ".repeat(200);
        let path = write(&dir, "garbage.wav", &bytes);
        let err = analyse(&path, Some("wav"), &limits()).unwrap_err();
        assert!(matches!(err, AudioError::Undecodable(_)), "{err:?}");
        assert_eq!(err.code(), "undecodable_audio");
    }

    #[test]
    fn empty_and_header_only_files_are_undecodable() {
        let dir = TempDir::new().unwrap();
        let empty = write(&dir, "empty.wav", b"");
        let err = analyse(&empty, Some("wav"), &limits()).unwrap_err();
        assert!(matches!(err, AudioError::Undecodable(_)), "{err:?}");

        let header_only = write(&dir, "header.wav", &wav_bytes(8000, 1, &[], None));
        let err = analyse(&header_only, Some("wav"), &limits()).unwrap_err();
        assert!(matches!(err, AudioError::Undecodable(_)), "{err:?}");
    }

    #[test]
    fn pseudo_random_bytes_do_not_panic() {
        let dir = TempDir::new().unwrap();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes: Vec<u8> = (0..256 * 1024)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        for ext in ["wav", "mp3", "ogg", "flac", "m4a", "webm"] {
            let path = write(&dir, &format!("noise.{ext}"), &bytes);
            match analyse(&path, Some(ext), &limits()) {
                Err(AudioError::Undecodable(_)) => {}
                // Random bytes can contain plausible MPEG frame headers; whatever is found must
                // at least be a sane result.
                Ok(a) => assert!(a.duration_seconds.is_finite() && a.duration_seconds > 0.0),
                Err(other) => panic!("{ext}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_wav_is_refused_or_shorter() {
        let dir = TempDir::new().unwrap();
        let rate = 22050;
        let samples = tone(rate, 1, 0.5, 440.0, 0.5);
        let mut bytes = wav_bytes(rate, 1, &samples, Some(rate * 3)); // claims 1.5 s
        bytes.push(0x12); // half a sample at the cut
        let path = write(&dir, "cut.wav", &bytes);
        match analyse(&path, Some("wav"), &limits()) {
            Ok(a) => assert!(
                (a.duration_seconds - 0.5).abs() < 0.01,
                "duration {}",
                a.duration_seconds
            ),
            Err(AudioError::Undecodable(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn streamed_wav_without_length_reads_to_the_end() {
        // Recorders writing to a pipe put 0xFFFFFFFF in the data length: the file can only end
        // with an unexpected end of file, which must not count as truncation.
        let dir = TempDir::new().unwrap();
        let samples = tone(16000, 1, 1.25, 440.0, 0.5);
        let path = write(
            &dir,
            "streamed.wav",
            &wav_bytes(16000, 1, &samples, Some(u32::MAX)),
        );
        let a = analyse(&path, Some("wav"), &limits()).unwrap();
        assert!(
            (a.duration_seconds - 1.25).abs() < 0.1,
            "duration {}",
            a.duration_seconds
        );
        assert!(a.decoded);
    }

    /// Ogg page CRC: polynomial 0x04c11db7, not reflected, initial value 0.
    fn ogg_crc(data: &[u8]) -> u32 {
        let mut crc = 0u32;
        for &byte in data {
            crc ^= u32::from(byte) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04c1_1db7
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    fn ogg_page(header_type: u8, granule: i64, seq: u32, packets: &[Vec<u8>]) -> Vec<u8> {
        let mut lacing = Vec::new();
        for packet in packets {
            let mut n = packet.len();
            while n >= 255 {
                lacing.push(255u8);
                n -= 255;
            }
            lacing.push(n as u8);
        }
        assert!(lacing.len() < 256);
        let mut page = Vec::new();
        page.extend_from_slice(b"OggS");
        page.push(0);
        page.push(header_type);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&0x0a17_a5a5_u32.to_le_bytes()); // serial
        page.extend_from_slice(&seq.to_le_bytes());
        page.extend_from_slice(&[0; 4]); // CRC, filled below
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        for packet in packets {
            page.extend_from_slice(packet);
        }
        let crc = ogg_crc(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        page
    }

    /// An Ogg Opus file of `seconds` (a multiple of 20 ms), mono. The packets carry a valid TOC
    /// byte (CELT fullband, one 20 ms frame) and filler: there is no Opus decoder here, so only
    /// the container is read.
    fn ogg_opus(seconds: f64) -> Vec<u8> {
        let pre_skip: u16 = 312;
        let mut head = b"OpusHead".to_vec();
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes());
        head.push(0); // mapping family
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&4u32.to_le_bytes());
        tags.extend_from_slice(b"test");
        tags.extend_from_slice(&0u32.to_le_bytes());

        let packets = (seconds / 0.02).round() as usize;
        let audio: Vec<Vec<u8>> = (0..packets)
            .map(|_| vec![0xf8, 0xff, 0xfe, 0x01, 0x02])
            .collect();
        let granule = i64::from(pre_skip) + (packets as i64) * 960;
        let mut out = ogg_page(0x02, 0, 0, &[head]);
        out.extend(ogg_page(0x00, 0, 1, &[tags]));
        out.extend(ogg_page(0x04, granule, 2, &audio));
        out
    }

    #[test]
    fn opus_is_reported_without_levels() {
        let dir = TempDir::new().unwrap();
        let path = write(&dir, "voice.opus", &ogg_opus(2.0));
        let a = analyse(&path, Some("opus"), &limits()).unwrap();
        assert_eq!(a.codec, "opus");
        assert!(!a.decoded);
        assert_eq!(a.sample_rate, 48_000);
        assert_eq!(a.channels, 1);
        assert!(
            (a.duration_seconds - 2.0).abs() < 0.01,
            "duration {}",
            a.duration_seconds
        );
        assert_eq!(a.peak_dbfs, None);
        assert_eq!(a.rms_dbfs, None);
        assert_eq!(a.clipping_ratio, None);
        assert_eq!(a.leading_silence_seconds, None);
        assert_eq!(a.trailing_silence_seconds, None);

        let short = Limits {
            max_seconds: 1.0,
            ..limits()
        };
        let err = analyse(&path, Some("ogg"), &short).unwrap_err();
        assert!(matches!(err, AudioError::TooLong { .. }), "{err:?}");
    }

    #[test]
    fn too_long_is_refused() {
        let dir = TempDir::new().unwrap();
        let path = sine_file(&dir);
        let limits = Limits {
            max_seconds: 1.0,
            ..limits()
        };
        let err = analyse(&path, Some("wav"), &limits).unwrap_err();
        match err {
            AudioError::TooLong {
                seconds,
                max_seconds,
            } => {
                assert!(seconds > 1.0, "seconds {seconds}");
                assert_eq!(max_seconds, 1.0);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            analyse(&path, Some("wav"), &limits).unwrap_err().code(),
            "audio_too_long"
        );
    }

    #[test]
    fn past_deadline_times_out() {
        let dir = TempDir::new().unwrap();
        let path = sine_file(&dir);
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        let limits = Limits {
            max_seconds: 3600.0,
            deadline: past,
        };
        let err = analyse(&path, Some("wav"), &limits).unwrap_err();
        assert!(matches!(err, AudioError::TimedOut), "{err:?}");
        assert_eq!(err.code(), "audio_analysis_timeout");
    }

    #[test]
    fn missing_file_is_io_error() {
        let dir = TempDir::new().unwrap();
        let err = analyse(&dir.path().join("nope.wav"), Some("wav"), &limits()).unwrap_err();
        assert!(matches!(err, AudioError::Io(_)), "{err:?}");
        assert_eq!(err.code(), "io_error");
    }

    #[test]
    fn analysis_round_trips_through_json() {
        let dir = TempDir::new().unwrap();
        let a = analyse(&sine_file(&dir), Some("wav"), &limits()).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        let back: AudioAnalysis = serde_json::from_str(&json).unwrap();
        assert_eq!(a, back);
    }

    #[test]
    fn dbfs_floor() {
        assert_eq!(to_dbfs(0.0), DBFS_FLOOR);
        assert_eq!(to_dbfs(1e-9), DBFS_FLOOR);
        assert!((to_dbfs(1.0)).abs() < 1e-12);
        assert!((to_dbfs(0.5) - -6.0206).abs() < 1e-3);
    }
}
