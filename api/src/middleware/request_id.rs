//! The request id: taken from a sane incoming `X-Request-ID` (so a proxy's id follows
//! the request through), else generated. Available to any code running for the
//! request through a task-local, so error bodies can carry it.

use uuid::Uuid;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The id of the request being handled ("" outside a request).
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Run `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Accept 1 to 128 characters of `[A-Za-z0-9._:-]`; anything else is replaced, so a
/// client cannot inject text into our logs.
pub fn accept_or_generate(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
                }) =>
        {
            id.to_owned()
        }
        _ => Uuid::new_v4().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(accept_or_generate(Some("abc-123_X.y:z")), "abc-123_X.y:z");
        for bad in [
            Some(""),
            Some("has space"),
            Some("line\nbreak"),
            Some("ü"),
            None,
        ] {
            let id = accept_or_generate(bad);
            assert!(Uuid::parse_str(&id).is_ok(), "{bad:?} → {id}");
        }
        assert_ne!(accept_or_generate(Some(&"a".repeat(129))), "a".repeat(129));
    }
}
