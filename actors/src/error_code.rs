//! Every machine-readable `code` a problem response can carry, in one place. The wire
//! string (snake_case) is stable: clients match on it. Each variant's doc line says what
//! it means and what the client should do; the OpenAPI document and the README's table
//! are built from (and checked against) this list.

macro_rules! error_codes {
    ($( #[doc = $doc:literal] $variant:ident = $wire:literal, $status:literal; )*) => {
        /// A stable, machine-readable error code (the `code` of a problem document).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( #[doc = $doc] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The wire string (`snake_case`).
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $wire,)* }
            }

            /// What the code means and what the client should do (one line).
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc.trim_ascii(),)* }
            }

            /// The HTTP status(es) this code is answered with, as written in the README
            /// (`"409"`, `"409, 422 on /api/uploads"`).
            pub const fn statuses(self) -> &'static str {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// The status a refusal with this code gets: the first of [`Self::statuses`].
            /// For validation that is 400 when the request does not fit the OpenAPI
            /// document (a client bug) and 422 when it fits but the content is refused
            /// (a wrong token, a blank name, a rule between fields: show it to the user).
            pub const fn status(self) -> u16 {
                let b = self.statuses().as_bytes();
                (b[0] - b'0') as u16 * 100 + (b[1] - b'0') as u16 * 10 + (b[2] - b'0') as u16
            }

            /// The code for a wire string, if there is one.
            pub fn parse(wire: &str) -> Option<ErrorCode> {
                match wire { $($wire => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    // Generic codes, one per status, for refusals that have no more specific code.
    /// The request is malformed; fix it before sending it again.
    BadRequest = "bad_request", "400";
    /// A valid bearer token is required: sign in (or refresh the access token) and retry.
    Unauthorized = "unauthorized", "401";
    /// The permission matrix does not allow this to the caller; do not retry.
    Forbidden = "forbidden", "403";
    /// No such resource, or it is not visible to the caller; do not retry.
    NotFound = "not_found", "404";
    /// The path does not support this method; the `Allow` header lists those it does.
    MethodNotAllowed = "method_not_allowed", "405";
    /// The server cannot produce a representation the `Accept` header allows.
    NotAcceptable = "not_acceptable", "406";
    /// The request took too long to arrive; send it again.
    RequestTimeout = "request_timeout", "408";
    /// The request conflicts with an existing record; reload and decide again.
    Conflict = "conflict", "409";
    /// The request needs a `Content-Length`.
    LengthRequired = "length_required", "411";
    /// The request body is larger than the server accepts; send less.
    PayloadTooLarge = "payload_too_large", "413";
    /// The request body's `Content-Type` is not accepted by this operation.
    UnsupportedMediaType = "unsupported_media_type", "415";
    /// Well-formed, but cannot be processed as asked.
    Unprocessable = "unprocessable", "422";
    /// Too many requests: wait the `Retry-After` seconds, then retry.
    RateLimited = "rate_limited", "429";
    /// An unexpected server error; quote the `request_id` when reporting it.
    InternalError = "internal_error", "500";
    /// This server is not configured for the feature (the detail names the setting).
    NotImplemented = "not_implemented", "501";
    /// A part of the server is not answering right now and nothing was written; retry after `Retry-After`.
    ServiceUnavailable = "service_unavailable", "503";

    // Produced by the HTTP layer (middleware and parameter parsing).
    /// The JSON or multipart body does not parse or misses a required field; fix the body.
    InvalidBody = "invalid_body", "400";
    /// A path, query or header parameter does not parse; fix the parameter.
    InvalidParameter = "invalid_parameter", "400";
    /// A tus request without `Tus-Resumable: 1.0.0`; send that header (the `Tus-Version` header lists what the server speaks).
    UnsupportedTusVersion = "unsupported_tus_version", "412";
    /// The `Range` header asks for bytes the file does not have; ask for a range inside `Content-Range`'s length.
    RangeNotSatisfiable = "range_not_satisfiable", "416";
    /// An API token with scope `read` tried to change something; use a token with scope `write`.
    InsufficientScope = "insufficient_scope", "403";

    // Accounts, sessions and tokens.
    /// The email address is not valid; correct it (`field` says which input).
    InvalidEmail = "invalid_email", "422";
    /// The full name is empty or too long; correct it.
    InvalidFullName = "invalid_full_name", "422";
    /// The password is shorter than the minimum; choose a longer one.
    PasswordTooShort = "password_too_short", "422";
    /// The password is longer than the maximum; choose a shorter one.
    PasswordTooLong = "password_too_long", "422";
    /// The password is too easy to guess (common, or made of the account's own details); choose another.
    PasswordTooWeak = "password_too_weak", "422";
    /// The password input is not valid (empty or too long); correct it.
    InvalidPassword = "invalid_password", "422";
    /// The current password given to confirm a change is wrong; ask the user again.
    WrongPassword = "wrong_password", "422";
    /// Email or password is wrong; ask the user again (the answer does not say which).
    InvalidCredentials = "invalid_credentials", "401";
    /// The access token or API token is invalid or revoked; sign in again.
    InvalidToken = "invalid_token", "401";
    /// The access token has expired; refresh it (`POST /api/auth/refresh`) and retry.
    TokenExpired = "token_expired", "401";
    /// The refresh token is invalid, expired or already used; sign in again.
    InvalidRefreshToken = "invalid_refresh_token", "401";
    /// The session has ended (signed out, expired or revoked); sign in again.
    SessionEnded = "session_ended", "401";
    /// This refresh token was just exchanged by a concurrent request; use the new tokens.
    RefreshTokenRotated = "refresh_token_rotated", "401";
    /// A refresh token was used twice: the session was ended for safety; sign in again.
    RefreshTokenReused = "refresh_token_reused", "401";
    /// The operation needs a signed-in session, not an API token; sign in.
    SessionRequired = "session_required", "403";
    /// The account's email address is not verified yet; follow the link in the verification mail (or ask for a new one).
    EmailNotVerified = "email_not_verified", "403";
    /// The email verification link is invalid or was already used; ask for a new one.
    VerificationTokenInvalid = "verification_token_invalid", "422";
    /// The email verification link has expired; ask for a new one.
    VerificationTokenExpired = "verification_token_expired", "422";
    /// The password reset link is invalid, used or expired; ask for a new one.
    ResetTokenInvalid = "reset_token_invalid", "422";
    /// A name (of a token, passkey or project) is empty or too long; correct it.
    InvalidName = "invalid_name", "422";
    /// The token scopes are not valid; use `read` or `write`.
    InvalidScopes = "invalid_scopes", "422";
    /// The token expiry is out of range; choose another.
    InvalidExpiry = "invalid_expiry", "422";
    /// The account already has the most API tokens allowed; revoke one first.
    TooManyTokens = "too_many_tokens", "409";

    // Passkeys and Google sign-in.
    /// Passkeys are not configured on this server (`WEBAUTHN_ORIGIN`); use a password.
    PasskeysDisabled = "passkeys_disabled", "501";
    /// The passkey ceremony failed or is unknown; start it again.
    PasskeyRejected = "passkey_rejected", "422, 401";
    /// The passkey ceremony id is unknown or expired; start the ceremony again.
    InvalidCeremony = "invalid_ceremony", "422";
    /// The passkey credential does not parse; start the ceremony again.
    InvalidCredential = "invalid_credential", "422";
    /// This passkey is already registered; nothing to do.
    CredentialRegistered = "credential_registered", "409";
    /// The account already has the most passkeys allowed; remove one first.
    TooManyPasskeys = "too_many_passkeys", "409";
    /// Signed in too long ago for this change; sign in again and retry.
    ReauthenticationRequired = "reauthentication_required", "403";
    /// Google sign-in is not configured on this server (`GOOGLE_CLIENT_ID`).
    GoogleSigninDisabled = "google_signin_disabled", "501";
    /// Google says the email address is not verified; verify it with Google first.
    GoogleEmailNotVerified = "google_email_not_verified", "403";
    /// The account is disabled; contact an administrator.
    AccountDisabled = "account_disabled", "403";
    /// The account exists but its email address is not verified; verify it, then link Google.
    AccountNotVerified = "account_not_verified", "403";
    /// The user declined the Google sign-in; nothing to retry.
    AccessDenied = "access_denied", "401";
    /// Google answered the sign-in with an error; start the sign-in again.
    ProviderError = "provider_error", "401";
    /// Google refused the authorisation code; start the sign-in again.
    TokenExchangeFailed = "token_exchange_failed", "401";
    /// Google's id token did not verify; start the sign-in again.
    InvalidIdToken = "invalid_id_token", "401";
    /// The one-time login code is invalid, used or expired; start the sign-in again.
    InvalidLoginCode = "invalid_login_code", "401";
    /// A `state` value (sign-in state, or a list filter) is not valid; start again or correct the filter.
    InvalidState = "invalid_state", "400";

    // Projects, members and invitations.
    /// The project description is too long; shorten it.
    InvalidDescription = "invalid_description", "422";
    /// The role is not `admin`, `contributor` or `reviewer`.
    InvalidRole = "invalid_role", "400";
    /// The project settings are not valid (`field` names the setting); correct them.
    InvalidSettings = "invalid_settings", "422";
    /// The search text is too long; shorten it.
    InvalidSearch = "invalid_search", "400";
    /// The audit-log action filter is too long.
    InvalidAction = "invalid_action", "400";
    /// `from` is not before `to`; swap or correct them.
    InvalidTimeRange = "invalid_time_range", "422";
    /// The project would be left without an admin; make someone else admin first.
    LastAdmin = "last_admin", "409";
    /// The invitee is already a member; nothing to do.
    AlreadyMember = "already_member", "409";
    /// An invitation to this email is already pending; resend it instead.
    InvitationPending = "invitation_pending", "409";
    /// The invitation has expired or was revoked; ask for a new one.
    InvitationExpired = "invitation_expired", "422";
    /// The invitation was sent to another email address; sign in with that account.
    InvitationEmailMismatch = "invitation_email_mismatch", "403";
    /// The project is not deleted, so there is nothing to restore.
    ProjectNotDeleted = "project_not_deleted", "409";
    /// The project was deleted too long ago to be restored.
    RestoreWindowPassed = "restore_window_passed", "409";

    // Pagination and idempotency.
    /// `limit` is out of range; use 1 to the documented maximum.
    InvalidLimit = "invalid_limit", "400";
    /// The cursor does not parse or belongs to another listing; start from the first page.
    InvalidCursor = "invalid_cursor", "422";
    /// The `Idempotency-Key` header is not 1 to 255 visible characters.
    InvalidIdempotencyKey = "invalid_idempotency_key", "400";
    /// The `Idempotency-Key` was used before with a different request; use a new key.
    IdempotencyKeyReused = "idempotency_key_reused", "422";
    /// A request with this `Idempotency-Key` is still running; retry after `Retry-After`.
    IdempotencyKeyInProgress = "idempotency_key_in_progress", "409";

    // Uploads (form and tus) and item content.
    /// `project_id` is missing; send it.
    MissingProjectId = "missing_project_id", "400, 422 in tus Upload-Metadata";
    /// `project_id` is not a UUID.
    InvalidProjectId = "invalid_project_id", "400, 422 in tus Upload-Metadata";
    /// The form has no `file` part; send one.
    MissingFile = "missing_file", "400";
    /// The form has more than one `file` part; send one.
    DuplicateFile = "duplicate_file", "400";
    /// The form's `project_id` part must come before the file.
    ProjectIdFirst = "project_id_first", "400";
    /// The form's `project_id` differs from the query's; send one value.
    ProjectIdMismatch = "project_id_mismatch", "422";
    /// A form field is not valid UTF-8 or too long (`field` names it).
    InvalidField = "invalid_field", "422";
    /// The `language` is not a BCP 47 tag.
    InvalidLanguage = "invalid_language", "422";
    /// The `metadata` is not a JSON object within the size limit.
    InvalidMetadata = "invalid_metadata", "422";
    /// `replaces` does not name an item of this project.
    InvalidReplaces = "invalid_replaces", "422";
    /// The file is empty; send a file with content.
    EmptyFile = "empty_file", "422";
    /// The file is larger than the project's limit; send a smaller file.
    FileTooLarge = "file_too_large", "413";
    /// The file's type is not one this kind of item accepts (see the project's accepted types).
    UnsupportedType = "unsupported_type", "415";
    /// The file is of the other kind (audio sent as a document, or the reverse), or replaces an item of the other kind.
    KindMismatch = "kind_mismatch", "422";
    /// The project does not accept this kind of item.
    KindNotAccepted = "kind_not_accepted", "422";
    /// The declared `Content-Type` of the file does not match its content; declare the right type (or none).
    DeclaredTypeMismatch = "declared_type_mismatch", "422";
    /// The DOCX archive is refused as unsafe (too large unpacked, too many entries); send another file.
    UnsafeArchive = "unsafe_archive", "422";
    /// The audio cannot be decoded; send a supported, intact recording.
    UndecodableAudio = "undecodable_audio", "422";
    /// The recording is longer than the project allows; send a shorter one.
    AudioTooLong = "audio_too_long", "422";
    /// Analysing the audio took too long; send a simpler or shorter file.
    AudioAnalysisTimeout = "audio_analysis_timeout", "422";
    /// The same content is already an item of this project; do not send it again.
    DuplicateContent = "duplicate_content", "409, 422 on /api/uploads";
    /// Another item of this project has this `external_id`; use another id.
    DuplicateExternalId = "duplicate_external_id", "409, 422 on /api/uploads";
    /// The text is empty; send some.
    EmptyText = "empty_text", "422";
    /// The text holds control characters; remove them.
    InvalidText = "invalid_text", "422";
    /// The text is longer than allowed; shorten it.
    TextTooLarge = "text_too_large", "413";
    /// The item is still being processed; wait for it to be `ready` (or failed).
    ItemProcessing = "item_processing", "409";
    /// The item is in review and cannot change now.
    ItemInReview = "item_in_review", "409";

    // Analytics.
    /// `from`, `to`, `bucket` or `tz` do not make a series; `field` names the parameter.
    InvalidPeriod = "invalid_period", "422";

    // Labelling.
    /// The label schema breaks a rule; `field` points at the part at fault.
    InvalidLabelSchema = "invalid_label_schema", "422";
    /// Annotations use a field or option the change removes; `force=true` keeps them on their version.
    SchemaInUse = "schema_in_use", "409";
    /// The project has no label schema yet; a project admin sets one first.
    NoLabelSchema = "no_label_schema", "409";
    /// A value does not fit its field; `field` points at it (`/values/…`).
    InvalidAnnotation = "invalid_annotation", "422";
    /// A `label` filter is not `field:value`, or there are more than 10.
    InvalidLabelFilter = "invalid_label_filter", "422";
    /// Items to submit lack required labels; the message names them.
    AnnotationIncomplete = "annotation_incomplete", "422";
    /// Suggested spans were made on an earlier text; the source suggests again.
    SuggestionStale = "suggestion_stale", "409";
    /// `If-Match` names a revision that is no longer current; read it again.
    PreconditionFailed = "precondition_failed", "412";

    // Exports.
    /// The export request's content is refused; `field` points at the part at fault.
    InvalidExport = "invalid_export", "422";
    /// The export is not finished yet (or failed); download it once `state` is `finished`.
    ExportNotReady = "export_not_ready", "409";
    /// The export was written by `alta export` to a file on the server; it has no download.
    ExportNotStored = "export_not_stored", "409";

    // Webhooks.
    /// The webhook's content is refused (a bad or unreachable url, an unknown event, too many webhooks); `field` points at the part at fault.
    InvalidWebhook = "invalid_webhook", "422";
    /// The delivery is still being tried; redeliver it once it is `delivered` or `failed`.
    DeliveryPending = "delivery_pending", "409";

    // Resumable uploads (tus).
    /// `Upload-Length` is missing or not a byte count.
    InvalidUploadLength = "invalid_upload_length", "400";
    /// `Upload-Defer-Length` is not supported; send `Upload-Length`.
    DeferLengthUnsupported = "defer_length_unsupported", "400";
    /// `Upload-Metadata` is not `key base64` pairs within the size limit.
    InvalidUploadMetadata = "invalid_upload_metadata", "422";
    /// `Upload-Offset` is not a byte offset.
    InvalidUploadOffset = "invalid_upload_offset", "400";
    /// The `kind` metadata is not `document` or `audio`.
    InvalidKind = "invalid_kind", "422";
    /// `Upload-Checksum` is not `<algorithm> <base64 digest>`.
    InvalidChecksum = "invalid_checksum", "400, 422 when the digest does not decode";
    /// The checksum algorithm is not `sha1` or `sha256`.
    UnsupportedChecksumAlgorithm = "unsupported_checksum_algorithm", "400";
    /// The chunk does not match its `Upload-Checksum`; nothing was kept: send it again.
    ChecksumMismatch = "checksum_mismatch", "460";
    /// The chunk's body ended before its end; read the offset (`HEAD`) and resume.
    BodyInterrupted = "body_interrupted", "400";
    /// `Upload-Offset` is not the stored offset; read it (`HEAD`) and resume from there.
    OffsetMismatch = "offset_mismatch", "409";
    /// Another request is writing to this upload; read the offset (`HEAD`) and retry.
    UploadBusy = "upload_busy", "409";
    /// The upload's first bytes are kept by another node (nodes without `MULTI_NODE`); send the rest there, or run every node with `MULTI_NODE=true`.
    UploadElsewhere = "upload_elsewhere", "409";
    /// The upload is complete; read its item with `GET /api/uploads/{id}`.
    UploadFinished = "upload_finished", "409";
    /// The chunk goes past the announced `Upload-Length`.
    ExceedsUploadLength = "exceeds_upload_length", "413";
    /// The user has the most unfinished uploads allowed; finish or delete one (waiting does not help).
    TooManyOpenUploads = "too_many_open_uploads", "403";
    /// The upload expired before it was finished; start a new one.
    UploadExpired = "upload_expired", "410";
    /// The complete file was refused (the detail says why); do not send it again.
    UploadRefused = "upload_refused", "410";

    // Review.
    /// `item_ids` is empty or too long.
    InvalidItemIds = "invalid_item_ids", "422";
    /// An id in `item_ids` names no item of this project that the caller can see; send ids from the project's item list.
    UnknownItem = "unknown_item", "422";
    /// The review comment is too long; shorten it.
    CommentTooLong = "comment_too_long", "422";
    /// The reason code is not one of the project's reasons.
    InvalidReason = "invalid_reason", "422";
    /// A rejection needs a `reason_code`; send one.
    ReasonRequired = "reason_required", "422";
    /// A `reason_code` goes with a rejection only; drop it.
    ReasonNotAllowed = "reason_not_allowed", "422";
    /// `corrected_text` goes with an approval only; drop it.
    CorrectionNotAllowed = "correction_not_allowed", "422";
    /// Only ready items (or ones sent back for changes) can be submitted for review.
    ItemNotReady = "item_not_ready", "409";
    /// The item is not pending review; reload the queue.
    ItemNotPending = "item_not_pending", "409";
    /// Another reviewer holds the item; take the next one.
    ReviewClaimed = "review_claimed", "409";
    /// The review lease expired and the item went back to the queue; take the next one.
    LeaseLost = "lease_lost", "409";
    /// The caller already decided this item in this round; take the next one.
    AlreadyDecided = "already_decided", "409";
    /// Contributors may not review their own items; take the next one.
    SelfReview = "self_review", "403";

    // Jobs.
    /// Only a failed job can be retried.
    JobNotFailed = "job_not_failed", "409";
}

impl ErrorCode {
    /// The generic code for an HTTP status that has no more specific one.
    pub fn for_status(status: u16) -> ErrorCode {
        match status {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            406 => Self::NotAcceptable,
            408 => Self::RequestTimeout,
            409 => Self::Conflict,
            411 => Self::LengthRequired,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::Unprocessable,
            429 => Self::RateLimited,
            501 => Self::NotImplemented,
            503 => Self::ServiceUnavailable,
            s if s >= 500 => Self::InternalError,
            _ => Self::BadRequest,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn wire_strings_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            let wire = code.as_str();
            assert!(seen.insert(wire), "{wire} twice");
            assert!(
                wire.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{wire} is not snake_case"
            );
            assert_eq!(ErrorCode::parse(wire), Some(code));
            assert!(!code.description().is_empty());
        }
    }
}
