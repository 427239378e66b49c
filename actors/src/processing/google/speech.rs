//! Speech-to-Text v1: transcripts with word timings.
//!
//! Recordings under [`SYNC_MAX_SECONDS`] sent inline go to `POST /v1/speech:recognize`,
//! which answers at once. Anything longer, or in Cloud Storage, goes to
//! `POST /v1/speech:longrunningrecognize`, which answers an operation; that is polled with
//! `GET /v1/operations/{name}` every [`Speech::poll_interval`] until it is `done`, for at
//! most [`Speech::max_wait`]. A poll failing for a transient reason is tolerated a few
//! times in a row ([`MAX_POLL_FAILURES`]): giving up would mean transcribing again.
//!
//! Both ask for word time offsets, word confidences and automatic punctuation. The text
//! is the first alternative's `transcript` of each result, in order, joined by spaces;
//! the words come from the same alternatives (`startTime`/`endTime` are protobuf
//! durations, `"1.300s"`); the confidence is the mean of those alternatives'
//! `confidence`. No transcript at all is `no_speech_found` (final).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{
    API_SPEECH, CODE_BAD_RESPONSE, CODE_NO_SPEECH_FOUND, CODE_OPERATION_TIMEOUT,
    CODE_QUOTA_EXCEEDED, CODE_REJECTED, CODE_UNAVAILABLE, GoogleAuth, JsonCall, RemoteError,
    base_url, clip, mean, record_error,
};
use crate::processing::MachineText;

/// [`MachineText::engine`] of Speech-to-Text transcripts.
pub const ENGINE_SPEECH: &str = "google_speech";
/// The global endpoint (regional ones: `https://{region}-speech.googleapis.com`).
pub const DEFAULT_ENDPOINT: &str = "https://speech.googleapis.com";
/// Longest recording `speech:recognize` takes; longer ones need the long-running method.
pub const SYNC_MAX_SECONDS: f64 = 60.0;
/// Default [`Speech::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default [`Speech::max_wait`].
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60 * 60);
/// Default [`Speech::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Transient poll failures in a row tolerated before the error is returned.
pub const MAX_POLL_FAILURES: u32 = 3;

/// The recording to transcribe.
#[derive(Debug, Clone)]
pub enum AudioSource {
    /// The bytes, sent base64 in the request (limit: 10 MB).
    Inline { bytes: Bytes },
    /// A `gs://bucket/object` the Speech service can read.
    Gcs { uri: String },
}

/// What Speech-to-Text should assume about the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechConfig {
    /// BCP-47 tag: `en-US`, `de-DE`.
    pub language_code: String,
    /// Needed unless the file's header says it (WAV, FLAC).
    pub sample_rate_hertz: Option<u32>,
    /// `LINEAR16`, `FLAC`, `MULAW`, `OGG_OPUS`, `MP3`, `WEBM_OPUS`...; `None` for WAV and
    /// FLAC, whose headers say it.
    pub encoding: Option<String>,
    /// `audioChannelCount`; only the first channel is recognised.
    pub channels: Option<u16>,
}

impl SpeechConfig {
    pub fn new(language_code: impl Into<String>) -> Self {
        Self {
            language_code: language_code.into(),
            sample_rate_hertz: None,
            encoding: None,
            channels: None,
        }
    }
}

/// The Speech-to-Text v1 REST API.
#[derive(Debug, Clone)]
pub struct Speech {
    pub http: reqwest::Client,
    /// `https://speech.googleapis.com` (no path).
    pub endpoint: String,
    pub auth: GoogleAuth,
    /// Time between two polls of a long-running operation.
    pub poll_interval: Duration,
    /// Longest wait for a long-running operation to be done.
    pub max_wait: Duration,
    /// Budget of one HTTP request.
    pub timeout: Duration,
}

/// `RecognizeResponse` / `LongRunningRecognizeResponse`, the parts read.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RecognizeResponse {
    results: Vec<RecognitionResult>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RecognitionResult {
    alternatives: Vec<Alternative>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Alternative {
    transcript: String,
    confidence: Option<f64>,
    words: Vec<WordInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WordInfo {
    #[serde(deserialize_with = "duration_seconds")]
    start_time: Option<f64>,
    #[serde(deserialize_with = "duration_seconds")]
    end_time: Option<f64>,
    word: String,
    confidence: Option<f64>,
}

/// `google.longrunning.Operation`, the parts read.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Operation {
    name: String,
    done: bool,
    error: Option<RpcStatus>,
    response: Option<RecognizeResponse>,
}

/// `google.rpc.Status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RpcStatus {
    code: i32,
    message: String,
}

/// A protobuf `Duration` in JSON: seconds with an `s` suffix (`"1.300s"`, `"0s"`).
fn duration_seconds<'de, D: Deserializer<'de>>(de: D) -> Result<Option<f64>, D::Error> {
    let Some(text) = Option::<String>::deserialize(de)? else {
        return Ok(None);
    };
    text.strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("not a duration: {text:?}")))
}

impl Speech {
    pub fn new(http: reqwest::Client, endpoint: impl Into<String>, auth: GoogleAuth) -> Self {
        Self {
            http,
            endpoint: endpoint.into(),
            auth,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_wait: DEFAULT_MAX_WAIT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The transcript of a recording of `duration_seconds`.
    pub async fn transcribe(
        &self,
        audio: AudioSource,
        config: SpeechConfig,
        duration_seconds: f64,
    ) -> Result<MachineText, RemoteError> {
        let body = json!({
            "config": recognition_config(&config),
            "audio": recognition_audio(&audio),
        });
        let call = JsonCall {
            http: &self.http,
            auth: &self.auth,
            api: API_SPEECH,
            service: "Speech-to-Text",
            timeout: self.timeout,
        };
        let base = base_url(&self.endpoint);
        let synchronous =
            matches!(audio, AudioSource::Inline { .. }) && duration_seconds < SYNC_MAX_SECONDS;
        let response = if synchronous {
            let url = format!("{base}/v1/speech:recognize");
            call.send(Method::POST, &url, Some(&body)).await?
        } else {
            self.long_running(&call, base, &body).await?
        };
        machine_text(response)
    }

    /// Starts a long-running recognition and waits for its result.
    async fn long_running(
        &self,
        call: &JsonCall<'_>,
        base: &str,
        body: &Value,
    ) -> Result<RecognizeResponse, RemoteError> {
        let deadline = Instant::now() + self.max_wait;
        let url = format!("{base}/v1/speech:longrunningrecognize");
        let mut operation: Operation = call.send(Method::POST, &url, Some(body)).await?;
        if operation.name.is_empty() && !operation.done {
            return Err(failed(RemoteError::transient(
                CODE_BAD_RESPONSE,
                "Speech-to-Text answered an operation without a name",
            )));
        }
        let name = operation.name.trim_start_matches("operations/").to_owned();
        let poll_url = format!("{base}/v1/operations/{name}");
        let mut failures = 0;
        loop {
            if operation.done {
                return finished(operation);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(failed(RemoteError::transient(
                    CODE_OPERATION_TIMEOUT,
                    format!(
                        "Speech-to-Text operation {name} was not done after {:?}",
                        self.max_wait
                    ),
                )));
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
            match call.send::<Operation>(Method::GET, &poll_url, None).await {
                Ok(next) => {
                    operation = next;
                    failures = 0;
                }
                Err(err) if err.retryable && failures < MAX_POLL_FAILURES => {
                    failures += 1;
                    tracing::warn!(operation = %name, error = %err, "polling a speech operation failed; trying again");
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Counts an error found in an answer (not an HTTP failure, already counted).
fn failed(err: RemoteError) -> RemoteError {
    record_error(API_SPEECH, &err);
    err
}

/// The result of a done operation.
fn finished(operation: Operation) -> Result<RecognizeResponse, RemoteError> {
    match (operation.error, operation.response) {
        (Some(status), _) => Err(failed(operation_error(&operation.name, &status))),
        (None, Some(response)) => Ok(response),
        (None, None) => Err(failed(RemoteError::transient(
            CODE_BAD_RESPONSE,
            format!(
                "Speech-to-Text operation {} is done without a response",
                operation.name
            ),
        ))),
    }
}

/// Classifies the `google.rpc.Status` a failed operation ended with.
fn operation_error(name: &str, status: &RpcStatus) -> RemoteError {
    let code_name = rpc_code_name(status.code);
    let message = format!(
        "Speech-to-Text operation {name} failed with {code_name}: {}",
        clip(&status.message)
    );
    match status.code {
        // RESOURCE_EXHAUSTED
        8 => RemoteError::transient(CODE_QUOTA_EXCEEDED, message),
        // DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNAVAILABLE
        4 | 10 | 13 | 14 => RemoteError::transient(CODE_UNAVAILABLE, message),
        _ => RemoteError::rejected(CODE_REJECTED, message),
    }
}

/// The name of a `google.rpc.Code`.
fn rpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "an unknown code",
    }
}

/// The `RecognitionConfig` JSON.
fn recognition_config(config: &SpeechConfig) -> Value {
    let mut out = Map::new();
    out.insert("languageCode".into(), json!(config.language_code));
    if let Some(encoding) = &config.encoding {
        out.insert("encoding".into(), json!(encoding));
    }
    if let Some(rate) = config.sample_rate_hertz {
        out.insert("sampleRateHertz".into(), json!(rate));
    }
    if let Some(channels) = config.channels {
        out.insert("audioChannelCount".into(), json!(channels));
    }
    out.insert("enableWordTimeOffsets".into(), json!(true));
    out.insert("enableWordConfidence".into(), json!(true));
    out.insert("enableAutomaticPunctuation".into(), json!(true));
    Value::Object(out)
}

/// The `RecognitionAudio` JSON.
fn recognition_audio(audio: &AudioSource) -> Value {
    match audio {
        AudioSource::Inline { bytes } => json!({"content": STANDARD.encode(bytes)}),
        AudioSource::Gcs { uri } => json!({"uri": uri}),
    }
}

fn machine_text(response: RecognizeResponse) -> Result<MachineText, RemoteError> {
    let best: Vec<&Alternative> = response
        .results
        .iter()
        .filter_map(|r| r.alternatives.first())
        .collect();
    let text = best
        .iter()
        .map(|a| a.transcript.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        return Err(RemoteError::rejected(
            CODE_NO_SPEECH_FOUND,
            "Speech-to-Text recognised no speech in the recording",
        ));
    }
    let words: Vec<Value> = best
        .iter()
        .flat_map(|a| a.words.iter())
        .map(|w| {
            let start = w.start_time.unwrap_or(0.0);
            let mut word = json!({
                "word": w.word,
                "start_seconds": start,
                "end_seconds": w.end_time.unwrap_or(start),
            });
            if let Some(confidence) = w.confidence {
                word["confidence"] = json!(confidence);
            }
            word
        })
        .collect();
    Ok(MachineText {
        engine: ENGINE_SPEECH,
        text,
        pages: None,
        words: (!words.is_empty()).then_some(Value::Array(words)),
        confidence: mean(best.iter().filter_map(|a| a.confidence)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::fake::{self, FakeServer, Reply};
    use super::super::{CODE_RATE_LIMITED, CODE_REJECTED};
    use super::*;

    const OPERATION: &str = "7612202767953098924";
    const POLL_PATH: &str = "/v1/operations/7612202767953098924";

    /// Two results as the API documents them, with word offsets and confidences.
    fn results() -> Value {
        json!([
            {
                "alternatives": [{
                    "transcript": "Hello world.",
                    "confidence": 0.92,
                    "words": [
                        {"startTime": "0s", "endTime": "0.500s", "word": "Hello", "confidence": 0.95},
                        {"startTime": "0.500s", "endTime": "1.300s", "word": "world.", "confidence": 0.89}
                    ]
                }],
                "resultEndTime": "1.400s",
                "languageCode": "en-us"
            },
            {
                "alternatives": [{
                    "transcript": " How are you?",
                    "confidence": 0.8,
                    "words": [
                        {"startTime": "2.100s", "endTime": "2.300s", "word": "How"},
                        {"startTime": "2.300s", "endTime": "2.400s", "word": "are"},
                        {"startTime": "2.400s", "endTime": "2.900s", "word": "you?"}
                    ]
                }],
                "resultEndTime": "3s",
                "languageCode": "en-us"
            }
        ])
    }

    fn metadata(percent: u32) -> Value {
        json!({
            "@type": "type.googleapis.com/google.cloud.speech.v1.LongRunningRecognizeMetadata",
            "progressPercent": percent,
            "startTime": "2026-01-05T10:00:00.000000Z",
            "lastUpdateTime": "2026-01-05T10:00:05.000000Z"
        })
    }

    fn done_operation() -> Value {
        json!({
            "name": OPERATION,
            "metadata": metadata(100),
            "done": true,
            "response": {
                "@type": "type.googleapis.com/google.cloud.speech.v1.LongRunningRecognizeResponse",
                "results": results(),
                "totalBilledTime": "90s",
                "requestId": "6151538617373370432"
            }
        })
    }

    fn engine(server: &FakeServer) -> Speech {
        let mut speech = Speech::new(
            reqwest::Client::new(),
            server.base(),
            GoogleAuth::static_token("test-token"),
        );
        speech.poll_interval = Duration::from_millis(10);
        speech.max_wait = Duration::from_secs(10);
        speech
    }

    fn inline() -> AudioSource {
        AudioSource::Inline {
            bytes: Bytes::from_static(b"RIFF fake wav"),
        }
    }

    fn config() -> SpeechConfig {
        SpeechConfig {
            language_code: "en-US".into(),
            sample_rate_hertz: Some(16_000),
            encoding: Some("LINEAR16".into()),
            channels: Some(1),
        }
    }

    fn assert_transcript(text: &MachineText) {
        assert_eq!(text.engine, ENGINE_SPEECH);
        assert_eq!(text.text, "Hello world. How are you?");
        assert!(text.pages.is_none());
        assert!((text.confidence.unwrap() - 0.86).abs() < 1e-9);
        let words = text.words.as_ref().unwrap().as_array().unwrap();
        assert_eq!(words.len(), 5);
        assert_eq!(
            words[1],
            json!({"word": "world.", "start_seconds": 0.5, "end_seconds": 1.3, "confidence": 0.89})
        );
        assert_eq!(
            words[4],
            json!({"word": "you?", "start_seconds": 2.4, "end_seconds": 2.9})
        );
    }

    /// Polls answer "not done" until the `done_at`-th (1-based), then `last`.
    fn long_running_server(
        done_at: usize,
        last: Value,
    ) -> (Arc<AtomicUsize>, impl Fn(&fake::Recorded) -> Reply) {
        let polls = Arc::new(AtomicUsize::new(0));
        let counter = polls.clone();
        let handler = move |req: &fake::Recorded| match req.path.as_str() {
            "/v1/speech:longrunningrecognize" => {
                Reply::json(200, json!({"name": OPERATION, "metadata": metadata(0)}))
            }
            POLL_PATH => {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= done_at {
                    Reply::json(200, last.clone())
                } else {
                    Reply::json(
                        200,
                        json!({"name": OPERATION, "metadata": metadata(30 * n as u32)}),
                    )
                }
            }
            _ => Reply::google_error(404, "NOT_FOUND", "no such path"),
        };
        (polls, handler)
    }

    #[tokio::test]
    async fn short_inline_audio_is_recognized_synchronously() {
        let server = FakeServer::start(|_| {
            Reply::json(
                200,
                json!({"results": results(), "totalBilledTime": "15s", "requestId": "123"}),
            )
        })
        .await;
        let text = engine(&server)
            .transcribe(inline(), config(), 12.5)
            .await
            .unwrap();
        assert_transcript(&text);

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let req = &requests[0];
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/v1/speech:recognize")
        );
        assert_eq!(req.authorization.as_deref(), Some("Bearer test-token"));
        assert_eq!(
            req.json(),
            json!({
                "config": {
                    "languageCode": "en-US",
                    "encoding": "LINEAR16",
                    "sampleRateHertz": 16000,
                    "audioChannelCount": 1,
                    "enableWordTimeOffsets": true,
                    "enableWordConfidence": true,
                    "enableAutomaticPunctuation": true
                },
                "audio": {"content": STANDARD.encode(b"RIFF fake wav")}
            })
        );
    }

    #[tokio::test]
    async fn long_audio_polls_the_operation_until_done() {
        let (polls, handler) = long_running_server(3, done_operation());
        let server = FakeServer::start(handler).await;
        let text = engine(&server)
            .transcribe(inline(), config(), 90.0)
            .await
            .unwrap();
        assert_transcript(&text);
        assert_eq!(polls.load(Ordering::SeqCst), 3);
        let requests = server.requests();
        assert_eq!(requests[0].path, "/v1/speech:longrunningrecognize");
        assert_eq!(requests[0].json()["config"]["enableWordTimeOffsets"], true);
        assert!(
            requests[1..]
                .iter()
                .all(|r| r.method == "GET" && r.path == POLL_PATH)
        );
        assert!(requests[1..].iter().all(|r| r.body.is_empty()));
    }

    #[tokio::test]
    async fn gcs_audio_is_always_long_running() {
        let (polls, handler) = long_running_server(1, done_operation());
        let server = FakeServer::start(handler).await;
        let audio = AudioSource::Gcs {
            uri: "gs://alta-bucket/voice/1.flac".into(),
        };
        let text = engine(&server)
            .transcribe(audio, SpeechConfig::new("de-DE"), 5.0)
            .await
            .unwrap();
        assert_eq!(text.text, "Hello world. How are you?");
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        let body = server.requests()[0].json();
        assert_eq!(
            body["audio"],
            json!({"uri": "gs://alta-bucket/voice/1.flac"})
        );
        assert_eq!(
            body["config"],
            json!({
                "languageCode": "de-DE",
                "enableWordTimeOffsets": true,
                "enableWordConfidence": true,
                "enableAutomaticPunctuation": true
            })
        );
    }

    #[tokio::test]
    async fn operation_ending_in_error_is_an_error() {
        let failed = json!({
            "name": OPERATION,
            "metadata": metadata(100),
            "done": true,
            "error": {"code": 3, "message": "Invalid recognition 'config': bad encoding.."}
        });
        let (_, handler) = long_running_server(2, failed);
        let server = FakeServer::start(handler).await;
        let err = engine(&server)
            .transcribe(inline(), config(), 120.0)
            .await
            .unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_REJECTED, false));
        assert!(err.message.contains("INVALID_ARGUMENT"), "{err}");
        assert!(err.message.contains("bad encoding"), "{err}");

        let unavailable = json!({
            "name": OPERATION, "done": true,
            "error": {"code": 14, "message": "The service is currently unavailable."}
        });
        let (_, handler) = long_running_server(1, unavailable);
        let server = FakeServer::start(handler).await;
        let err = engine(&server)
            .transcribe(inline(), config(), 120.0)
            .await
            .unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_UNAVAILABLE, true));
    }

    #[tokio::test]
    async fn operation_not_done_in_time_is_a_retryable_timeout() {
        let (polls, handler) = long_running_server(usize::MAX, Value::Null);
        let server = FakeServer::start(handler).await;
        let mut speech = engine(&server);
        speech.max_wait = Duration::from_millis(100);
        let err = speech
            .transcribe(inline(), config(), 600.0)
            .await
            .unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_OPERATION_TIMEOUT, true));
        assert!(polls.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn transient_poll_failures_are_tolerated() {
        let polls = Arc::new(AtomicUsize::new(0));
        let counter = polls.clone();
        let server = FakeServer::start(move |req| match req.path.as_str() {
            "/v1/speech:longrunningrecognize" => Reply::json(200, json!({"name": OPERATION})),
            _ => match counter.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::google_error(503, "UNAVAILABLE", "try again"),
                1 => Reply::text(429, "slow down"),
                _ => Reply::json(200, done_operation()),
            },
        })
        .await;
        let text = engine(&server)
            .transcribe(inline(), config(), 61.0)
            .await
            .unwrap();
        assert_eq!(text.text, "Hello world. How are you?");
        assert_eq!(polls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn starting_an_operation_may_be_rate_limited() {
        let server = FakeServer::start(|_| Reply::text(429, "")).await;
        let err = engine(&server)
            .transcribe(inline(), config(), 61.0)
            .await
            .unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_RATE_LIMITED, true));
    }

    #[tokio::test]
    async fn no_results_is_no_speech_found() {
        let server = FakeServer::start(|_| {
            Reply::json(200, json!({"totalBilledTime": "15s", "requestId": "42"}))
        })
        .await;
        let err = engine(&server)
            .transcribe(inline(), config(), 15.0)
            .await
            .unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_NO_SPEECH_FOUND, false));
    }

    #[test]
    fn durations_parse() {
        let w: WordInfo =
            serde_json::from_value(json!({"startTime": "1.300s", "endTime": "12s", "word": "x"}))
                .unwrap();
        assert_eq!((w.start_time, w.end_time), (Some(1.3), Some(12.0)));
        let w: WordInfo = serde_json::from_value(json!({"word": "x"})).unwrap();
        assert_eq!((w.start_time, w.end_time), (None, None));
        assert!(serde_json::from_value::<WordInfo>(json!({"startTime": "1.3"})).is_err());
    }
}
