//! The authorization matrix, walked end to end (docs/ARCHITECTURE.md, rule 6; security checklist §4:
//! OWASP API1 BOLA, API5 BFLA).
//!
//! `EXPECTATIONS` names every operation of the served OpenAPI document and the rule it
//! follows. The test fails when the spec and the table disagree (an operation added
//! without a rule, or a rule for an operation that no longer exists), then sends every
//! operation as every principal — anonymous, a non-member, a contributor, a reviewer, a
//! project admin and a super admin — against an own, a foreign and a soft-deleted
//! project, and compares the answer with the rule. An unexpected 2xx is the failure that
//! matters most; every denial must also be a problem document with the expected status.
//!
//! Documents and recordings (items) are checked the same way: uploads and lists name the
//! project in a form field or the query, single items by `{id}`. Every fixture holds one
//! live item of each kind, uploaded by a contributor (in the foreign project, by its
//! creator); "another contributor" of the project, who did not upload it, is asked about
//! single items too, and must not learn they exist.
//!
//! Resumable uploads (tus 1.0 at `/api/uploads`) name the project in the
//! `Upload-Metadata` header when they are created, and are their creator's alone
//! afterwards: `HEAD`, `PATCH`, `DELETE` and `GET` of an upload created by the contributor
//! (one per operation; a fresh one after each `DELETE` case) answer everyone else 404,
//! super admins included. `HEAD` answers carry no body, so only their status (and the
//! challenge of a 401) is compared.
//!
//! Operations that change membership or the project's existence run against a fixture
//! that is thrown away (and built again on demand) after each such request, so that one
//! case never changes what the next one sees. Deleting an item spends only the item: the
//! next case gets a fresh one.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    time::Duration,
};

use base64::Engine as _;
use futures::future::join_all;
use reqwest::{
    Method, Response, StatusCode,
    multipart::{Form, Part},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, extract_link, spawn_app},
    items::{upload, wav},
};

backend_tests!(every_operation_follows_the_authorization_matrix);

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// No sign-in needed (checked for "no 5xx" only; not part of the sweep).
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Super admins only; everyone else gets 403.
    SuperAdmin,
    /// In a project: any member, and super admins.
    Member,
    /// In a project: project admins and super admins; other members get 403.
    /// For `member_*` the target is another member.
    ProjectAdmin,
    /// `DELETE …/members/{own id}`: any member may leave.
    Leave,
    /// Super admins only, and nobody else learns the project exists (404). Restoring a
    /// live project is a 409 `project_not_deleted` even for a super admin.
    Restore,
    /// Bound to the invited email address rather than to a role; checked on its own in
    /// [`invitation_tokens_are_bound_to_the_invited_email`].
    InvitationToken,
    /// Upload into the project named by the form's `project_id`: contributors, project
    /// admins and super admins; reviewers get 403.
    Upload,
    /// List the items of the project named by the `project_id` query parameter: any
    /// member and super admins. A contributor is shown their own items only.
    ListItems,
    /// One item (`{id}`): its uploader, reviewers, project admins and super admins.
    /// Another contributor gets 404: someone else's item does not exist for them.
    ReadItem,
    /// Delete one item (`{id}`): its uploader, project admins and super admins;
    /// reviewers get 403, another contributor 404.
    DeleteItem,
    /// Start a resumable upload into the project named by `project_id` in the
    /// `Upload-Metadata` header: as [`Rule::Upload`].
    ResumableUpload,
    /// One resumable upload (`{id}`): only the user who created it; everyone else, super
    /// admins included, gets 404.
    OwnUpload,
    /// Correct an item's text (`{id}`): its uploader, project admins and super admins;
    /// reviewers get 403, another contributor 404.
    EditText,
    /// Label an item (`{id}`): as [`Rule::EditText`].
    Annotate,
    /// A project's figures (`project_id` in the query): its admins and reviewers, and
    /// super admins; contributors 403.
    ReadAnalytics,
    /// One person's figures (`{user_id}`, the bystander contributor of the own project):
    /// super admins and the admins of a project they share; to anyone else 404.
    UserAnalytics,
    /// Accept a suggestion into an item's labels (`{id}`): as [`Rule::Annotate`]; the
    /// allowed get 404, as the item has no suggestion from the source named.
    AcceptSuggestion,
    /// Label many items of the project in `{project_id}`: contributors, project admins
    /// and super admins; reviewers 403. The sweep names an item that does not exist, so
    /// the allowed get 422 `unknown_item`.
    BulkAnnotate,
    /// One export or webhook of the project in `{project_id}` (`{export_id}`,
    /// `{webhook_id}`: unknown ones here): project admins and super admins get 404,
    /// other members 403.
    AdminObjectById,
    /// Process an item again (`{id}`): project admins and super admins; its uploader and
    /// reviewers get 403, another contributor 404.
    ReprocessItem,
    /// A processing job (`{id}` is the job of an item): whoever may read the item.
    ReadJob,
    /// A super-admin operation on a job by `{id}` (an unknown one here): super admins
    /// get 404, everyone else 403 before any lookup.
    SuperAdminJob,
    /// Send items to review (`{project_id}`, the items in the body): a contributor their
    /// own, project admins and super admins anyone's; reviewers get 403.
    SubmitItems,
    /// The review queue of the project named by the `project_id` query parameter, and
    /// claiming from it: reviewers, project admins and super admins; contributors 403.
    ReviewQueue,
    /// Review one pending item (`{id}`): reviewers, project admins and super admins; its
    /// uploader gets 403, another contributor 404.
    ReviewItem,
    /// Renew a lease on a pending item (`{id}`): as [`Rule::ReviewItem`], and since none
    /// of the callers holds the lease, the allowed ones get 409 `lease_lost`.
    RenewLease,
    /// Finishing a passkey ceremony the caller started: any signed-in user. The sweep
    /// names a ceremony nobody started, so the allowed get 422 `invalid_ceremony`.
    Ceremony,
    /// One of the caller's passkeys (`{id}`): any signed-in user, for their own. The
    /// sweep names a random id, so the allowed get 404.
    OwnPasskey,
    /// Ending sessions: any signed-in user, for their own. Each case signs in afresh and
    /// ends that session (`{id}` is its id), so the sweep's own tokens stay valid.
    OwnSession,
}

/// Where a request names what it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// Nothing in a project (the caller, the platform, a token).
    Platform,
    /// `{project_id}` in the path.
    ProjectPath,
    /// The `project_id` field of a multipart form.
    ProjectForm,
    /// The `project_id` query parameter.
    ProjectQuery,
    /// `{id}` in the path: an item, which belongs to a project.
    Item,
    /// `project_id` in the tus `Upload-Metadata` header.
    ProjectMetadata,
    /// `{id}` in the path: a resumable upload, which belongs to the user who created it.
    Upload,
    /// `{id}` in the path: a job, looked up only for super admins.
    AdminJob,
    /// `{id}` in the path: one of the caller's sessions.
    Session,
    /// `{id}` in the path: one of the caller's passkeys.
    Passkey,
}

impl Rule {
    fn subject(self) -> Subject {
        match self {
            Self::Public
            | Self::SignedIn
            | Self::SuperAdmin
            | Self::InvitationToken
            | Self::Ceremony => Subject::Platform,
            Self::OwnPasskey => Subject::Passkey,
            Self::OwnSession => Subject::Session,
            Self::Member
            | Self::ProjectAdmin
            | Self::Leave
            | Self::Restore
            | Self::SubmitItems
            | Self::BulkAnnotate
            | Self::AdminObjectById => Subject::ProjectPath,
            Self::Upload => Subject::ProjectForm,
            Self::ListItems | Self::ReviewQueue | Self::ReadAnalytics => Subject::ProjectQuery,
            Self::UserAnalytics => Subject::Platform,
            Self::ReadItem
            | Self::DeleteItem
            | Self::EditText
            | Self::Annotate
            | Self::AcceptSuggestion
            | Self::ReprocessItem
            | Self::ReadJob
            | Self::ReviewItem
            | Self::RenewLease => Subject::Item,
            Self::SuperAdminJob => Subject::AdminJob,
            Self::ResumableUpload => Subject::ProjectMetadata,
            Self::OwnUpload => Subject::Upload,
        }
    }

    /// Project-scoped rules run against every [`Target`]. An upload belongs to a user,
    /// not to a project: its rule runs once per principal, against the contributor's.
    fn project_scoped(self) -> bool {
        !matches!(
            self.subject(),
            Subject::Platform
                | Subject::Upload
                | Subject::AdminJob
                | Subject::Session
                | Subject::Passkey
        )
    }
}

/// operationId → the rule(s) it follows. `member_remove` is two operations in one:
/// removing someone else, and leaving.
const EXPECTATIONS: &[(&str, &[Rule])] = &[
    // Public.
    ("auth_register", &[Rule::Public]),
    ("auth_login", &[Rule::Public]),
    ("auth_verify_email", &[Rule::Public]),
    ("auth_resend_verification", &[Rule::Public]),
    ("health_live", &[Rule::Public]),
    ("health_ready", &[Rule::Public]),
    // Platform.
    ("auth_me", &[Rule::SignedIn]),
    ("analytics_summary", &[Rule::ReadAnalytics]),
    ("analytics_contributors", &[Rule::ReadAnalytics]),
    ("analytics_series", &[Rule::ReadAnalytics]),
    ("analytics_reviewers", &[Rule::ReadAnalytics]),
    ("analytics_user", &[Rule::UserAnalytics]),
    ("admin_list_users", &[Rule::SuperAdmin]),
    ("admin_audit_log", &[Rule::SuperAdmin]),
    ("project_list", &[Rule::SignedIn]),
    ("project_create", &[Rule::SignedIn]),
    ("project_restore", &[Rule::Restore]),
    // Inside a project.
    ("project_get", &[Rule::Member]),
    ("project_members", &[Rule::Member]),
    ("project_update", &[Rule::ProjectAdmin]),
    ("project_delete", &[Rule::ProjectAdmin]),
    ("member_update_role", &[Rule::ProjectAdmin]),
    ("member_remove", &[Rule::ProjectAdmin, Rule::Leave]),
    ("invitation_create", &[Rule::ProjectAdmin]),
    ("invitation_list", &[Rule::ProjectAdmin]),
    ("invitation_resend", &[Rule::ProjectAdmin]),
    ("invitation_revoke", &[Rule::ProjectAdmin]),
    ("project_audit_log", &[Rule::ProjectAdmin]),
    ("invitation_accept", &[Rule::InvitationToken]),
    // Items: documents and recordings.
    ("document_upload", &[Rule::Upload]),
    ("document_list", &[Rule::ListItems]),
    ("document_get", &[Rule::ReadItem]),
    ("document_content", &[Rule::ReadItem]),
    ("document_delete", &[Rule::DeleteItem]),
    ("voice_upload", &[Rule::Upload]),
    ("voice_list", &[Rule::ListItems]),
    ("voice_get", &[Rule::ReadItem]),
    ("voice_content", &[Rule::ReadItem]),
    ("voice_delete", &[Rule::DeleteItem]),
    // Resumable uploads (tus 1.0).
    ("tus_options", &[Rule::Public]),
    ("tus_create", &[Rule::ResumableUpload]),
    ("tus_head", &[Rule::OwnUpload]),
    ("tus_patch", &[Rule::OwnUpload]),
    ("tus_terminate", &[Rule::OwnUpload]),
    ("get_upload", &[Rule::OwnUpload]),
    // Processing: text, corrections, reprocessing, jobs.
    ("document_text", &[Rule::ReadItem]),
    ("document_edit_text", &[Rule::EditText]),
    ("document_reprocess", &[Rule::ReprocessItem]),
    ("voice_transcript", &[Rule::ReadItem]),
    ("voice_edit_transcript", &[Rule::EditText]),
    ("voice_reprocess", &[Rule::ReprocessItem]),
    ("job_get", &[Rule::ReadJob]),
    ("admin_list_jobs", &[Rule::SuperAdmin]),
    ("admin_retry_job", &[Rule::SuperAdminJob]),
    ("auth_refresh", &[Rule::Public]),
    ("auth_password_forgot", &[Rule::Public]),
    ("auth_password_reset", &[Rule::Public]),
    ("auth_google_login", &[Rule::Public]),
    ("auth_google_callback", &[Rule::Public]),
    ("auth_google_exchange", &[Rule::Public]),
    // Changing to the same password: allowed, and the sweep's passwords stay valid.
    ("auth_password_change", &[Rule::SignedIn]),
    ("auth_sessions", &[Rule::SignedIn]),
    ("auth_logout", &[Rule::OwnSession]),
    ("auth_logout_all", &[Rule::OwnSession]),
    ("auth_revoke_session", &[Rule::OwnSession]),
    ("auth_token_create", &[Rule::SignedIn]),
    ("auth_token_list", &[Rule::SignedIn]),
    ("auth_token_revoke", &[Rule::OwnSession]),
    ("auth_notifications", &[Rule::SignedIn]),
    ("auth_passkey_register", &[Rule::SignedIn]),
    ("auth_passkey_register_verify", &[Rule::Ceremony]),
    ("auth_passkey_login", &[Rule::Public]),
    ("auth_passkey_login_verify", &[Rule::Public]),
    ("auth_passkey_list", &[Rule::SignedIn]),
    ("auth_passkey_rename", &[Rule::OwnPasskey]),
    ("auth_passkey_delete", &[Rule::OwnPasskey]),
    ("auth_set_notifications", &[Rule::SignedIn]),
    // Review. Each `{id}` case gets a fresh item, sent to review by its uploader.
    ("document_reviews", &[Rule::ReadItem]),
    ("voice_reviews", &[Rule::ReadItem]),
    ("review_submit", &[Rule::SubmitItems]),
    ("review_queue", &[Rule::ReviewQueue]),
    ("review_next", &[Rule::ReviewQueue]),
    ("review_renew", &[Rule::RenewLease]),
    ("review_skip", &[Rule::ReviewItem]),
    ("review_decide", &[Rule::ReviewItem]),
    // Labelling.
    ("label_schema_get", &[Rule::Member]),
    ("label_schema_put", &[Rule::ProjectAdmin]),
    ("annotations_bulk_put", &[Rule::BulkAnnotate]),
    ("document_annotation_get", &[Rule::ReadItem]),
    ("document_annotation_put", &[Rule::Annotate]),
    ("document_annotation_revisions", &[Rule::ReadItem]),
    ("voice_annotation_get", &[Rule::ReadItem]),
    ("voice_annotation_put", &[Rule::Annotate]),
    ("voice_annotation_revisions", &[Rule::ReadItem]),
    ("document_annotation_suggestions", &[Rule::ReadItem]),
    ("document_annotation_suggestion_put", &[Rule::Annotate]),
    (
        "document_annotation_suggestion_accept",
        &[Rule::AcceptSuggestion],
    ),
    // Exports and webhooks (`{export_id}`, `{webhook_id}`: unknown ones).
    ("exports_create", &[Rule::ProjectAdmin]),
    ("exports_list", &[Rule::ProjectAdmin]),
    ("exports_get", &[Rule::AdminObjectById]),
    ("exports_delete", &[Rule::AdminObjectById]),
    ("exports_download", &[Rule::AdminObjectById]),
    ("webhooks_create", &[Rule::ProjectAdmin]),
    ("webhooks_list", &[Rule::ProjectAdmin]),
    ("webhooks_get", &[Rule::AdminObjectById]),
    ("webhooks_update", &[Rule::AdminObjectById]),
    ("webhooks_delete", &[Rule::AdminObjectById]),
    ("webhooks_rotate_secret", &[Rule::AdminObjectById]),
    ("webhooks_test", &[Rule::AdminObjectById]),
    ("webhooks_deliveries", &[Rule::AdminObjectById]),
    ("webhooks_redeliver", &[Rule::AdminObjectById]),
    ("voice_annotation_suggestions", &[Rule::ReadItem]),
    ("voice_annotation_suggestion_put", &[Rule::Annotate]),
    (
        "voice_annotation_suggestion_accept",
        &[Rule::AcceptSuggestion],
    ),
];

/// Operations after which the fixture they ran on is not trusted any more.
fn destructive(operation_id: &str) -> bool {
    matches!(
        operation_id,
        "project_delete"
            | "project_restore"
            | "member_update_role"
            | "member_remove"
            | "invitation_revoke"
    )
}

/// Operations after which the item they ran on is not trusted any more.
fn consumes_item(operation_id: &str) -> bool {
    matches!(
        operation_id,
        "document_delete" | "voice_delete" | "document_reprocess" | "voice_reprocess"
    )
}

/// Operations on an item in review: each case gets a fresh document (ready for
/// `review_submit`, pending review for the others), never the fixture's shared one.
fn needs_review_item(operation_id: &str) -> Option<bool> {
    match operation_id {
        "review_submit" => Some(false),
        "review_renew" | "review_skip" | "review_decide" => Some(true),
        _ => None,
    }
}

/// Operations that need the item's processing to have ended (else 409 `item_processing`).
fn needs_settled_item(operation_id: &str) -> bool {
    matches!(
        operation_id,
        "document_edit_text"
            | "voice_edit_transcript"
            | "document_reprocess"
            | "voice_reprocess"
            | "document_annotation_put"
            | "voice_annotation_put"
            | "document_annotation_suggestion_put"
            | "voice_annotation_suggestion_put"
            | "document_annotation_suggestion_accept"
            | "voice_annotation_suggestion_accept"
    )
}

/// Operations after which the resumable upload they ran on is not trusted any more.
fn consumes_upload(operation_id: &str) -> bool {
    operation_id == "tus_terminate"
}

/// The two kinds of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Document,
    Voice,
}

impl Kind {
    const ALL: [Self; 2] = [Self::Document, Self::Voice];

    /// The kind an item operation works on, from its operationId.
    fn of(operation_id: &str) -> Option<Self> {
        if operation_id.starts_with("document_") {
            Some(Self::Document)
        } else if operation_id.starts_with("voice_") {
            Some(Self::Voice)
        } else {
            None
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Self::Document => "/api/documents",
            Self::Voice => "/api/voice",
        }
    }

    /// (bytes, file name, declared type) of an upload no other upload of this run has:
    /// the server refuses the same bytes twice in a project (409 `duplicate_content`).
    fn probe(self, n: usize) -> (Vec<u8>, &'static str, &'static str) {
        match self {
            Self::Document => (
                format!("authorization matrix probe {n} {}\n", Uuid::new_v4()).into_bytes(),
                "x.txt",
                "text/plain",
            ),
            Self::Voice => {
                // 0.1 s of 16-bit mono at 8 kHz; each upload its own tone, 0.5 Hz apart and
                // below the Nyquist frequency, so no two sample patterns are alike.
                let step = u32::try_from(n % 7000).unwrap();
                (
                    wav(0.1, 8000, 100.0 + f64::from(step) * 0.5),
                    "x.wav",
                    "audio/wav",
                )
            }
        }
    }
}

/// The points of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Anonymous,
    /// Signed in, member of nothing.
    Stranger,
    Contributor,
    Reviewer,
    /// A project admin of the own project (not its creator).
    Admin,
    SuperAdmin,
    /// A contributor (the `bystander`) who did not upload the item asked about; asked
    /// about single items only.
    OtherContributor,
}

impl Who {
    const ALL: [Self; 6] = [
        Self::Anonymous,
        Self::Stranger,
        Self::Contributor,
        Self::Reviewer,
        Self::Admin,
        Self::SuperAdmin,
    ];

    const ALL_AND_OTHER_CONTRIBUTOR: [Self; 7] = [
        Self::Anonymous,
        Self::Stranger,
        Self::Contributor,
        Self::Reviewer,
        Self::Admin,
        Self::SuperAdmin,
        Self::OtherContributor,
    ];

    /// Who is asked about an operation following `rule`.
    fn asked(rule: Rule) -> &'static [Self] {
        match rule.subject() {
            Subject::Item | Subject::Upload => &Self::ALL_AND_OTHER_CONTRIBUTOR,
            _ => &Self::ALL,
        }
    }

    /// The role in the own project (and in the soft-deleted one, before its deletion).
    fn project_role(self) -> Option<&'static str> {
        match self {
            Self::Contributor | Self::OtherContributor => Some("contributor"),
            Self::Reviewer => Some("reviewer"),
            Self::Admin => Some("admin"),
            Self::Anonymous | Self::Stranger | Self::SuperAdmin => None,
        }
    }

    fn email(self) -> Option<&'static str> {
        match self {
            Self::Anonymous => None,
            Self::Stranger => Some("stranger@example.org"),
            Self::Contributor => Some("contributor@example.org"),
            Self::Reviewer => Some("reviewer@example.org"),
            Self::Admin => Some("admin2@example.org"),
            Self::SuperAdmin => Some("root@example.org"),
            Self::OtherContributor => Some("bystander@example.org"),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Anonymous => "anonymous",
            Self::Stranger => "stranger (non-member)",
            Self::Contributor => "contributor",
            Self::Reviewer => "reviewer",
            Self::Admin => "project admin",
            Self::SuperAdmin => "super_admin",
            Self::OtherContributor => "another contributor (not the uploader)",
        })
    }
}

/// The project a project-scoped request names (for a single item: the item's project).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    /// Created by `owner`; contributor, reviewer and admin2 are members.
    Own,
    /// Created by `other`; none of the principals is a member (the bystander is).
    Foreign,
    /// Like `Own`, then soft-deleted by `owner`.
    Deleted,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Own => "own project A",
            Self::Foreign => "foreign project B",
            Self::Deleted => "soft-deleted project D",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A 2xx.
    Allowed,
    /// A problem document with this status and its generic code.
    Denied(StatusCode),
    /// A problem document with this status and this specific code (e.g. authorized, but
    /// the state does not allow it).
    Problem(StatusCode, &'static str),
}

/// The matrix itself: what `who` should get from an operation following `rule`.
fn expected(rule: Rule, who: Who, target: Option<Target>) -> Expect {
    match authorized(rule, who, target) {
        // Allowed to renew, but nobody asked holds the lease.
        Expect::Allowed if rule == Rule::RenewLease => {
            Expect::Problem(StatusCode::CONFLICT, "lease_lost")
        }
        Expect::Allowed if rule == Rule::Ceremony => {
            Expect::Problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_ceremony")
        }
        Expect::Allowed if rule == Rule::OwnPasskey => {
            Expect::Problem(StatusCode::NOT_FOUND, "not_found")
        }
        Expect::Allowed if rule == Rule::BulkAnnotate => {
            Expect::Problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_item")
        }
        Expect::Allowed if rule == Rule::AcceptSuggestion => {
            Expect::Problem(StatusCode::NOT_FOUND, "not_found")
        }
        Expect::Allowed if rule == Rule::AdminObjectById => {
            Expect::Problem(StatusCode::NOT_FOUND, "not_found")
        }

        expect => expect,
    }
}

/// What the permission matrix alone says.
fn authorized(rule: Rule, who: Who, target: Option<Target>) -> Expect {
    use Expect::{Allowed, Denied, Problem};
    const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    if who == Who::Anonymous {
        return Denied(StatusCode::UNAUTHORIZED);
    }
    let super_admin = who == Who::SuperAdmin;
    match (rule, target) {
        (Rule::SignedIn | Rule::OwnSession | Rule::Ceremony | Rule::OwnPasskey, None) => Allowed,
        (Rule::SuperAdmin, None) if super_admin => Allowed,
        (Rule::UserAnalytics, None) if super_admin || who == Who::Admin => Allowed,
        (Rule::UserAnalytics, None) => Denied(NOT_FOUND),
        (Rule::SuperAdmin, None) => Denied(FORBIDDEN),
        // Uploads are made by the contributor: nobody else learns they exist.
        (Rule::OwnUpload, None) if who == Who::Contributor => Allowed,
        (Rule::OwnUpload, None) => Denied(NOT_FOUND),
        (Rule::SuperAdminJob, None) if super_admin => Problem(NOT_FOUND, "not_found"),
        (Rule::SuperAdminJob, None) => Denied(FORBIDDEN),
        (Rule::Restore, Some(Target::Deleted)) if super_admin => Allowed,
        (Rule::Restore, Some(_)) if super_admin => {
            Problem(StatusCode::CONFLICT, "project_not_deleted")
        }
        // A member sees the (live) project: restoring it is simply not theirs to do.
        (Rule::Restore, Some(Target::Own)) if who.project_role().is_some() => Denied(FORBIDDEN),
        (Rule::Restore, Some(_)) => Denied(NOT_FOUND),
        // A deleted project is hidden from every read and change, super admins included.
        (_, Some(Target::Deleted)) => Denied(NOT_FOUND),
        // A super admin who is not a member has no membership to leave.
        (Rule::Leave, Some(_)) if super_admin => Denied(NOT_FOUND),
        (_, Some(_)) if super_admin => Allowed,
        // Outsiders never learn the project exists.
        (_, Some(Target::Foreign)) => Denied(NOT_FOUND),
        (_, Some(Target::Own)) => match (who.project_role(), rule) {
            (None, _) => Denied(NOT_FOUND),
            // Someone else's item does not exist for a contributor.
            (
                Some(_),
                Rule::ReadItem
                | Rule::DeleteItem
                | Rule::EditText
                | Rule::Annotate
                | Rule::AcceptSuggestion
                | Rule::ReprocessItem
                | Rule::ReadJob
                | Rule::ReviewItem
                | Rule::RenewLease,
            ) if who == Who::OtherContributor => Denied(NOT_FOUND),
            (Some("admin"), _) => Allowed,
            // Contributors do not review; reviewers submit nobody's items.
            (Some("contributor"), Rule::ReviewQueue | Rule::ReviewItem | Rule::RenewLease) => {
                Denied(FORBIDDEN)
            }
            (Some("reviewer"), Rule::SubmitItems) => Denied(FORBIDDEN),
            (Some("contributor"), Rule::ReadAnalytics) => Denied(FORBIDDEN),
            // Reprocessing is the admins' call.
            (Some(_), Rule::ReprocessItem) => Denied(FORBIDDEN),
            (Some(_), Rule::ProjectAdmin | Rule::AdminObjectById) => Denied(FORBIDDEN),
            // Reviewers review: they neither upload nor delete.
            (
                Some("reviewer"),
                Rule::Upload
                | Rule::ResumableUpload
                | Rule::DeleteItem
                | Rule::EditText
                | Rule::Annotate
                | Rule::AcceptSuggestion
                | Rule::BulkAnnotate,
            ) => Denied(FORBIDDEN),
            (Some(_), _) => Allowed,
        },
        _ => panic!("rule {rule:?} does not apply to target {target:?}"),
    }
}

/// The generic `code` of a denial.
fn denial_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        other => panic!("no generic code for {other}"),
    }
}

const INVITE_LINK: &str = "http://alta.test/invitations/accept?token=";
const SPEC_METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];
/// The tus version every request to `/api/uploads` but `OPTIONS` and `GET` must name.
const TUS_VERSION: &str = "1.0.0";
/// `Upload-Length` of the uploads made here, and the bytes a `PATCH` sends (at offset 0).
const TUS_LENGTH: usize = 1000;
const TUS_CHUNK: usize = 10;

/// One project and what requests into it need.
#[derive(Debug, Clone)]
struct Fixture {
    name: String,
    project_id: String,
    /// A pending invitation (to an address with no account), made before any deletion.
    invitation_id: String,
    invitation_email: String,
    /// A live item of each kind, uploaded by [`World::uploader`] (taken out once spent).
    items: HashMap<Kind, String>,
}

/// What a request carries.
#[derive(Debug, Clone)]
enum Payload {
    Json(Value),
    /// A multipart upload: the `project_id` field and a `file` part.
    Upload {
        project_id: String,
        bytes: Vec<u8>,
        file_name: &'static str,
        mime: &'static str,
    },
    /// A tus request: its headers and, for `PATCH`, the bytes
    /// (`application/offset+octet-stream`).
    Tus {
        headers: Vec<(&'static str, String)>,
        bytes: Option<Vec<u8>>,
    },
}

/// The server, the principals and the current fixtures.
struct World {
    app: TestApp,
    tokens: HashMap<Who, String>,
    ids: HashMap<Who, String>,
    /// Creator (admin) of the own and deleted projects.
    owner: String,
    /// Creator (admin) of the foreign project.
    other: String,
    /// A contributor in every fixture: the `{user_id}` of "remove / change someone else".
    bystander: String,
    bystander_id: String,
    fixtures: HashMap<Target, Fixture>,
    /// operationId → the id of the resumable upload its cases ask about, made by the
    /// contributor in the own project (taken out once spent).
    uploads: HashMap<String, String>,
    /// item id → the id of its processing job.
    item_jobs: HashMap<String, String>,
    /// The token the next request is sent with instead of the principal's own (a fresh
    /// session, for [`Rule::OwnSession`]).
    case_token: Option<String>,
    serial: usize,
}

impl World {
    async fn new(backend: Backend) -> Self {
        let app = spawn_app(backend).await;
        let root = app.super_admin(Who::SuperAdmin.email().unwrap()).await;
        let emails = [
            Who::Stranger.email().unwrap(),
            Who::Contributor.email().unwrap(),
            Who::Reviewer.email().unwrap(),
            Who::Admin.email().unwrap(),
            "owner@example.org",
            "other@example.org",
            Who::OtherContributor.email().unwrap(),
        ];
        let signed_up = join_all(emails.iter().map(|e| app.signed_up_user(e))).await;
        let [
            stranger,
            contributor,
            reviewer,
            admin,
            owner,
            other,
            bystander,
        ] = <[String; 7]>::try_from(signed_up).unwrap();
        let tokens: HashMap<Who, String> = [
            (Who::Stranger, stranger),
            (Who::Contributor, contributor),
            (Who::Reviewer, reviewer),
            (Who::Admin, admin),
            (Who::SuperAdmin, root),
            (Who::OtherContributor, bystander.clone()),
        ]
        .into_iter()
        .collect();
        let mut ids = HashMap::new();
        for (who, token) in &tokens {
            ids.insert(*who, app.user_id(token).await);
        }
        let bystander_id = app.user_id(&bystander).await;
        Self {
            app,
            tokens,
            ids,
            owner,
            other,
            bystander,
            bystander_id,
            fixtures: HashMap::new(),
            uploads: HashMap::new(),
            item_jobs: HashMap::new(),
            case_token: None,
            serial: 0,
        }
    }

    fn next(&mut self) -> usize {
        self.serial += 1;
        self.serial
    }

    async fn send(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let payload = body.cloned().map(Payload::Json);
        self.send_payload(token, method, path, payload.as_ref())
            .await
    }

    async fn send_payload(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        payload: Option<&Payload>,
    ) -> Response {
        let mut req = self.app.client.request(method, self.app.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req = match payload {
            None => req,
            Some(Payload::Json(body)) => req.json(body),
            Some(Payload::Upload {
                project_id,
                bytes,
                file_name,
                mime,
            }) => {
                let file = Part::bytes(bytes.clone())
                    .file_name(*file_name)
                    .mime_str(mime)
                    .unwrap();
                req.multipart(
                    Form::new()
                        .text("project_id", project_id.clone())
                        .part("file", file),
                )
            }
            Some(Payload::Tus { headers, bytes }) => {
                let req = headers
                    .iter()
                    .fold(req, |req, (name, value)| req.header(*name, value));
                match bytes {
                    Some(bytes) => req
                        .header("Content-Type", "application/offset+octet-stream")
                        .body(bytes.clone()),
                    None => req,
                }
            }
        };
        req.send().await.unwrap()
    }

    async fn send_as(
        &self,
        who: Who,
        method: Method,
        path: &str,
        payload: Option<&Payload>,
    ) -> Response {
        let token = match &self.case_token {
            Some(fresh) if who != Who::Anonymous => Some(fresh.as_str()),
            _ => self.tokens.get(&who).map(String::as_str),
        };
        self.send_payload(token, method, path, payload).await
    }

    /// A fresh session of `who` for a [`Rule::OwnSession`] case: its token, and its id.
    async fn fresh_session(&self, who: Who) -> Option<(String, String)> {
        let email = who.email()?;
        let token = self.app.token(email, PASSWORD).await;
        let sessions = self.app.get_json("/api/auth/sessions", &token).await;
        let id = sessions["items"]
            .as_array()
            .and_then(|items| items.iter().find(|s| s["current"] == true))
            .and_then(|s| s["id"].as_str())
            .unwrap_or_else(|| panic!("set-up: no current session in {sessions}"))
            .to_owned();
        Some((token, id))
    }

    /// Who uploads the items of a fixture: the contributor in A and D, B's creator in B.
    fn uploader(&self, target: Target) -> String {
        match target {
            Target::Own | Target::Deleted => self.tokens[&Who::Contributor].clone(),
            Target::Foreign => self.other.clone(),
        }
    }

    /// Upload a fresh item of `kind` into `project_id` as `token`; its id.
    async fn upload_item(&mut self, token: &str, project_id: &str, kind: Kind) -> String {
        let n = self.next();
        let (bytes, file_name, mime) = kind.probe(n);
        let resp = upload(
            &self.app,
            token,
            kind.endpoint(),
            project_id,
            bytes,
            file_name,
            mime,
        )
        .await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "set-up: upload of a {kind:?} into {project_id}: {text}"
        );
        let item: Value = serde_json::from_str(&text).unwrap();
        let id = item["id"].as_str().unwrap().to_owned();
        let job = item["job_id"].as_str().unwrap().to_owned();
        self.item_jobs.insert(id.clone(), job);
        id
    }

    /// Wait until the item's processing has ended (read as the super admin).
    async fn settle(&self, kind: Kind, item: &str) {
        let token = &self.tokens[&Who::SuperAdmin];
        for _ in 0..400 {
            let resp = self
                .app
                .get_auth(&format!("{}/{item}", kind.endpoint()), token)
                .await;
            let body: Value = resp.json().await.unwrap_or_default();
            if !matches!(body["status"].as_str(), Some("uploaded" | "processing")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("set-up: item {item} never finished processing");
    }

    /// A live item of `kind` in the `target` fixture, by [`Self::uploader`].
    async fn item(&mut self, target: Target, kind: Kind) -> String {
        let fixture = self.fixture(target).await;
        if let Some(id) = fixture.items.get(&kind) {
            return id.clone();
        }
        if target == Target::Deleted {
            // Nothing can be uploaded into a deleted project: build it again.
            self.fixtures.remove(&target);
            return self.fixture(target).await.items[&kind].clone();
        }
        let uploader = self.uploader(target);
        let id = self.upload_item(&uploader, &fixture.project_id, kind).await;
        self.fixtures
            .get_mut(&target)
            .expect("the fixture was just looked up")
            .items
            .insert(kind, id.clone());
        id
    }

    /// Forget the item of `kind` in the `target` fixture: the next case gets a fresh one.
    fn discard_item(&mut self, target: Target, kind: Kind) {
        if let Some(fixture) = self.fixtures.get_mut(&target) {
            fixture.items.remove(&kind);
        }
    }

    /// A document of the `target` fixture for a review case: a fresh upload by
    /// [`Self::uploader`], processed, and sent to review by them when `submitted`. In the
    /// deleted project nothing can be uploaded or submitted: its item is asked about as
    /// it is (the answer is 404 whatever its state).
    async fn review_item(&mut self, target: Target, submitted: bool) -> String {
        if target == Target::Deleted {
            return self.item(target, Kind::Document).await;
        }
        self.discard_item(target, Kind::Document);
        let item = self.item(target, Kind::Document).await;
        self.discard_item(target, Kind::Document);
        self.settle(Kind::Document, &item).await;
        if submitted {
            let project_id = self.fixture(target).await.project_id;
            let uploader = self.uploader(target);
            let resp = self
                .send(
                    Some(&uploader),
                    Method::POST,
                    &format!("/api/projects/{project_id}/review"),
                    Some(&json!({"item_ids": [item]})),
                )
                .await;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            assert_eq!(
                status,
                StatusCode::OK,
                "set-up: submit {item} for review: {text}"
            );
        }
        item
    }

    /// The resumable upload the cases of `operation_id` ask about: made by the
    /// contributor in the own project when first needed.
    async fn upload(&mut self, operation_id: &str) -> String {
        if let Some(id) = self.uploads.get(operation_id) {
            return id.clone();
        }
        let project_id = self.fixture(Target::Own).await.project_id;
        let n = self.next();
        let resp = self
            .send_as(
                Who::Contributor,
                Method::POST,
                "/api/uploads",
                Some(&tus_creation(&project_id, n)),
            )
            .await;
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "set-up: resumable upload into {project_id} for {operation_id}: {text}"
        );
        let id = location
            .strip_prefix("/api/uploads/")
            .unwrap_or_else(|| panic!("set-up: unexpected Location {location:?}"))
            .to_owned();
        self.uploads.insert(operation_id.to_owned(), id.clone());
        id
    }

    /// Forget the upload of `operation_id`: the next case gets a fresh one. When the case
    /// was to be denied, the upload must still be there: its creator removes it, and a
    /// 404 then means the denied request did remove it after all.
    async fn spend_upload(&mut self, operation_id: &str, expect: Expect) -> Result<(), String> {
        let Some(id) = self.uploads.remove(operation_id) else {
            return Ok(());
        };
        if expect == Expect::Allowed {
            return Ok(());
        }
        let resp = self
            .send_as(
                Who::Contributor,
                Method::DELETE,
                &format!("/api/uploads/{id}"),
                Some(&tus(Vec::new(), None)),
            )
            .await;
        match resp.status() {
            StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Err(format!(
                "LEAK: denied, yet upload {id} is gone (its creator's DELETE afterwards got 404)"
            )),
            status => Err(format!(
                "its creator's DELETE of upload {id} afterwards got {status}: {}",
                resp.text().await.unwrap_or_default()
            )),
        }
    }

    async fn invite(&self, token: &str, project_id: &str, email: &str, role: &str) -> Value {
        let resp = self
            .send(
                Some(token),
                Method::POST,
                &format!("/api/projects/{project_id}/invite"),
                Some(&json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "invite {email}");
        resp.json().await.unwrap()
    }

    async fn accept(&self, token: &str, invitation_token: &str) -> Response {
        self.send(
            Some(token),
            Method::POST,
            &format!("/api/projects/invitations/{invitation_token}/accept"),
            None,
        )
        .await
    }

    /// A project set up for `target`: members joined through invitations, a pending
    /// invitation, items, and for `Deleted`, the soft delete.
    async fn build_fixture(&mut self, target: Target) -> Fixture {
        let n = self.next();
        let name = format!("fixture-{n}");
        let creator = match target {
            Target::Foreign => self.other.clone(),
            Target::Own | Target::Deleted => self.owner.clone(),
        };
        let resp = self
            .send(
                Some(&creator),
                Method::POST,
                "/api/projects",
                Some(&json!({"name": name})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "create {name}");
        let project: Value = resp.json().await.unwrap();
        assert_eq!(project["my_role"], "admin", "the creator is admin");
        let project_id = project["id"].as_str().unwrap().to_owned();
        // The label schema every `label_schema_put` case sends again (so it changes
        // nothing), and that annotations are checked against.
        let resp = self
            .send(
                Some(&creator),
                Method::PUT,
                &format!("/api/projects/{project_id}/label-schema"),
                body_for("label_schema_put", n).as_ref(),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "label schema of {name}");

        // (email, token, role) of everyone who joins.
        let mut joiners = vec![(
            Who::OtherContributor.email().unwrap(),
            self.bystander.clone(),
            "contributor",
        )];
        if target != Target::Foreign {
            for who in [Who::Contributor, Who::Reviewer, Who::Admin] {
                joiners.push((
                    who.email().unwrap(),
                    self.tokens[&who].clone(),
                    who.project_role().unwrap(),
                ));
            }
        }
        for (email, _, role) in &joiners {
            self.invite(&creator, &project_id, email, role).await;
        }
        let invitation_email = format!("pending-{n}@example.org");
        let pending = self
            .invite(&creator, &project_id, &invitation_email, "contributor")
            .await;
        let invitation_id = pending["id"].as_str().unwrap().to_owned();

        let app = &self.app;
        let this = &*self;
        join_all(joiners.iter().map(|(email, token, role)| {
            let name = name.clone();
            async move {
                let invitation = invitation_token(app, email, &name).await;
                let resp = this.accept(token, &invitation).await;
                assert_eq!(resp.status(), StatusCode::OK, "{email} accepts {name}");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["role"], *role, "{email} joins {name} as {role}");
            }
        }))
        .await;

        // One item of each kind by the uploader, before any deletion; in A also one of
        // each by the bystander, which A's contributor must not be shown.
        let uploader = self.uploader(target);
        let bystander = self.bystander.clone();
        let mut items = HashMap::new();
        for kind in Kind::ALL {
            let id = self.upload_item(&uploader, &project_id, kind).await;
            items.insert(kind, id);
            if target == Target::Own {
                self.upload_item(&bystander, &project_id, kind).await;
            }
        }

        if target == Target::Deleted {
            let resp = self
                .send(
                    Some(&creator),
                    Method::DELETE,
                    &format!("/api/projects/{project_id}"),
                    None,
                )
                .await;
            assert_eq!(resp.status(), StatusCode::NO_CONTENT, "delete {name}");
        }
        Fixture {
            name,
            project_id,
            invitation_id,
            invitation_email,
            items,
        }
    }

    async fn fixture(&mut self, target: Target) -> Fixture {
        if let Some(fixture) = self.fixtures.get(&target) {
            return fixture.clone();
        }
        let fixture = self.build_fixture(target).await;
        self.fixtures.insert(target, fixture.clone());
        fixture
    }

    /// The concrete path and body of `operation_id` for this case.
    async fn request_for(
        &mut self,
        operation_id: &str,
        template: &str,
        rule: Rule,
        who: Who,
        target: Option<Target>,
    ) -> (String, Option<Payload>) {
        let n = self.next();
        let mut path = template.to_owned();
        let mut payload = body_for(operation_id, n)
            .map(Payload::Json)
            .or_else(|| tus_payload(operation_id));
        if rule.subject() == Subject::Upload {
            let upload = self.upload(operation_id).await;
            path = path.replace("{id}", &upload);
        }
        if let Some(target) = target {
            let kind = Kind::of(operation_id);
            if let Some(submitted) = needs_review_item(operation_id) {
                let item = self.review_item(target, submitted).await;
                path = path.replace("{id}", &item);
                if operation_id == "review_submit" {
                    payload = Some(Payload::Json(json!({"item_ids": [item]})));
                }
            }
            if let (Subject::Item, Some(kind)) = (rule.subject(), kind) {
                let item = self.item(target, kind).await;
                if needs_settled_item(operation_id) && target != Target::Deleted {
                    self.settle(kind, &item).await;
                }
                path = path.replace("{id}", &item);
            }
            if rule == Rule::ReadJob {
                let item = self.item(target, Kind::Document).await;
                let job = self.item_jobs[&item].clone();
                path = path.replace("{id}", &job);
            }
            let fixture = self.fixture(target).await;
            path = path
                .replace("{project_id}", &fixture.project_id)
                .replace("{invitation_id}", &fixture.invitation_id)
                .replace("{export_id}", &Uuid::now_v7().to_string())
                .replace("{webhook_id}", &Uuid::now_v7().to_string())
                .replace("{delivery_id}", &Uuid::now_v7().to_string());
            match rule.subject() {
                Subject::ProjectQuery => {
                    path.push_str(&format!("?project_id={}", fixture.project_id));
                }
                Subject::ProjectForm => {
                    let kind = kind.unwrap_or_else(|| {
                        panic!("{operation_id}: what does it upload? extend Kind::of")
                    });
                    let (bytes, file_name, mime) = kind.probe(n);
                    payload = Some(Payload::Upload {
                        project_id: fixture.project_id.clone(),
                        bytes,
                        file_name,
                        mime,
                    });
                }
                Subject::ProjectMetadata => {
                    payload = Some(tus_creation(&fixture.project_id, n));
                }
                Subject::Platform
                | Subject::ProjectPath
                | Subject::Item
                | Subject::Upload
                | Subject::AdminJob
                | Subject::Session
                | Subject::Passkey => {}
            }
        }
        if rule.subject() == Subject::AdminJob || rule == Rule::OwnPasskey {
            path = path.replace("{id}", &Uuid::now_v7().to_string());
        }
        self.case_token = None;
        if rule == Rule::OwnSession && operation_id == "auth_token_revoke" {
            // A fresh API token of the caller's (anonymous: a random id).
            let id = match self.tokens.get(&who) {
                Some(token) => {
                    let resp = self
                        .send(
                            Some(token),
                            Method::POST,
                            "/api/auth/tokens",
                            Some(&json!({"name": format!("to revoke {n}"), "scopes": ["read"]})),
                        )
                        .await;
                    assert_eq!(resp.status(), StatusCode::CREATED, "set-up: create a token");
                    let body: Value = resp.json().await.unwrap();
                    body["id"].as_str().unwrap().to_owned()
                }
                None => Uuid::now_v7().to_string(),
            };
            path = path.replace("{id}", &id);
        } else if rule == Rule::OwnSession {
            // Anonymous callers get a random id: they are refused before any lookup.
            let id = match self.fresh_session(who).await {
                Some((token, id)) => {
                    self.case_token = Some(token);
                    id
                }
                None => Uuid::now_v7().to_string(),
            };
            path = path.replace("{id}", &id);
        }
        let member = match (rule, self.ids.get(&who)) {
            (Rule::Leave, Some(own)) => own.clone(),
            _ => self.bystander_id.clone(),
        };
        path = path.replace("{user_id}", &member);
        if operation_id == "auth_verify_email" {
            path.push_str("?token=not-a-real-token");
        }
        assert!(
            !path.contains('{'),
            "{operation_id}: no value for a parameter of {template}; extend request_for"
        );
        (path, payload)
    }
}

/// A valid, harmless body for the operations that take one.
fn body_for(operation_id: &str, n: usize) -> Option<Value> {
    Some(match operation_id {
        "auth_register" => json!({"email": format!("probe-{n}@example.org"), "password": PASSWORD}),
        "auth_login" => {
            json!({"email": "nobody@example.org", "password": "not the password at all"})
        }
        "auth_resend_verification" => json!({"email": "nobody@example.org"}),
        "project_create" => json!({"name": format!("created-{n}")}),
        "project_update" => json!({"name": format!("renamed-{n}"), "description": "still here"}),
        "member_update_role" => json!({"role": "reviewer"}),
        "document_edit_text" | "voice_edit_transcript" => json!({"text": format!("corrected {n}")}),
        "auth_set_notifications" => json!({"review_mail": true}),
        "auth_passkey_register_verify" | "auth_passkey_login_verify" => {
            json!({"ceremony_id": Uuid::new_v4(), "credential": {}})
        }
        "auth_passkey_login" => json!({"email": "nobody@example.org"}),
        "auth_passkey_rename" => json!({"name": format!("key {n}")}),
        "auth_refresh" => json!({"refresh_token": "not-a-real-refresh-token"}),
        "auth_google_exchange" => json!({"code": "not-a-real-code"}),
        "auth_token_create" => json!({"name": format!("probe {n}"), "scopes": ["read"]}),
        "auth_password_forgot" => json!({"email": "nobody@example.org"}),
        "auth_password_reset" => json!({"token": "not-a-real-token", "new_password": PASSWORD}),
        "auth_password_change" => json!({"current_password": PASSWORD, "new_password": PASSWORD}),
        "review_decide" => json!({"decision": "approve"}),
        "exports_create" => json!({"format": "jsonl"}),
        // A public address written as such: made without resolving anything.
        "webhooks_create" => {
            json!({"url": format!("https://93.184.216.34/probe-{n}"), "events": ["item.approved"]})
        }
        "webhooks_update" => json!({"description": format!("probe {n}")}),
        "label_schema_put" => json!({"fields": [{"name": "topic", "type": "text"}]}),
        "document_annotation_put" | "voice_annotation_put" => json!({"values": {}}),
        "document_annotation_suggestion_put" | "voice_annotation_suggestion_put" => {
            json!({"source": format!("probe-{n}"), "values": {}})
        }
        "document_annotation_suggestion_accept" | "voice_annotation_suggestion_accept" => {
            json!({"source": "nobody-suggested"})
        }
        "annotations_bulk_put" => json!({"items": [{"item_id": Uuid::new_v4(), "values": {}}]}),
        "invitation_create" => {
            json!({"email": format!("invitee-{n}@example.org"), "role": "contributor"})
        }
        _ => return None,
    })
}

/// A tus request: `Tus-Resumable`, these headers, and these bytes.
fn tus(mut headers: Vec<(&'static str, String)>, bytes: Option<Vec<u8>>) -> Payload {
    headers.insert(0, ("Tus-Resumable", TUS_VERSION.to_owned()));
    Payload::Tus { headers, bytes }
}

/// The tus headers (and bytes) of an operation on `/api/uploads` but creation; `GET`
/// needs none.
fn tus_payload(operation_id: &str) -> Option<Payload> {
    Some(match operation_id {
        "tus_options" | "tus_head" | "tus_terminate" => tus(Vec::new(), None),
        "tus_patch" => tus(
            vec![("Upload-Offset", "0".to_owned())],
            Some(vec![b'x'; TUS_CHUNK]),
        ),
        _ => return None,
    })
}

/// Start a resumable upload of a document into `project_id`.
fn tus_creation(project_id: &str, n: usize) -> Payload {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let metadata = format!(
        "project_id {},kind {},filename {}",
        b64(project_id),
        b64("document"),
        b64(&format!("resumable-{n}.txt"))
    );
    tus(
        vec![
            ("Upload-Length", TUS_LENGTH.to_string()),
            ("Upload-Metadata", metadata),
        ],
        None,
    )
}

/// The token of the invitation mail to `email` for the project named `project_name`.
async fn invitation_token(app: &TestApp, email: &str, project_name: &str) -> String {
    let quoted = format!("\"{project_name}\"");
    for _ in 0..400 {
        if let Some(link) = app
            .outbox_mails(email)
            .iter()
            .rev()
            .filter(|mail| mail.contains(&quoted))
            .find_map(|mail| extract_link(mail, "invitations/accept"))
        {
            let token = link
                .strip_prefix(INVITE_LINK)
                .unwrap_or_else(|| panic!("unexpected invitation link {link}"));
            return token.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no invitation mail to {email} for {project_name}");
}

/// Compare an answer with the expectation; `Err` describes the mismatch, `Ok` holds the
/// body.
async fn check(resp: Response, expect: Expect) -> Result<String, String> {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let challenge = resp.headers().contains_key("www-authenticate");
    let text = resp.text().await.unwrap_or_default();
    if status.is_server_error() {
        return Err(format!("server error {status}: {text}"));
    }
    let (want, code) = match expect {
        Expect::Allowed if status.is_success() => return Ok(text),
        Expect::Allowed => return Err(format!("expected 2xx, got {status}: {text}")),
        Expect::Denied(want) => (want, denial_code(want)),
        Expect::Problem(want, code) => (want, code),
    };
    if status.is_success() {
        return Err(format!(
            "UNEXPECTED {status} (allowed; expected {want} {code}): {text}"
        ));
    }
    if status != want {
        return Err(format!("expected {want} {code}, got {status}: {text}"));
    }
    if !content_type.starts_with("application/problem+json") {
        return Err(format!(
            "denial is not a problem document ({content_type}): {text}"
        ));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if body["code"] != code || body["status"] != want.as_u16() {
        return Err(format!("expected code {code} and status {want}: {body}"));
    }
    if want == StatusCode::UNAUTHORIZED && !challenge {
        return Err("401 without WWW-Authenticate".into());
    }
    Ok(text)
}

/// [`check`] for `HEAD`, whose answers have no body: the status, and the challenge of a
/// 401.
fn check_head(resp: &Response, expect: Expect) -> Result<String, String> {
    let status = resp.status();
    if status.is_server_error() {
        return Err(format!("server error {status}"));
    }
    let want = match expect {
        Expect::Allowed if status.is_success() => return Ok(String::new()),
        Expect::Allowed => return Err(format!("expected 2xx, got {status}")),
        Expect::Denied(want) | Expect::Problem(want, _) => want,
    };
    if status.is_success() {
        return Err(format!(
            "UNEXPECTED {status} (allowed; expected {want}), Upload-Offset {:?}",
            resp.headers().get("upload-offset")
        ));
    }
    if status != want {
        return Err(format!("expected {want}, got {status}"));
    }
    if want == StatusCode::UNAUTHORIZED && !resp.headers().contains_key("www-authenticate") {
        return Err("401 without WWW-Authenticate".into());
    }
    Ok(String::new())
}

/// A contributor's list of items holds their own only (project A also holds the
/// bystander's).
fn shows_only_own_items(body: &str, own_id: &str) -> Result<(), String> {
    let list: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    let items = list["items"]
        .as_array()
        .ok_or_else(|| format!("no items array: {body}"))?;
    let others: Vec<&Value> = items
        .iter()
        .filter(|item| item["contributor_id"] != own_id)
        .map(|item| &item["id"])
        .collect();
    if others.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "LEAK: a contributor is shown items of others {others:?}: {body}"
        ))
    }
}

/// One operation of the served spec.
struct Served {
    method: Method,
    path: String,
    secured: bool,
    /// The names of its query parameters.
    query: BTreeSet<String>,
    /// The fields of its `multipart/form-data` body, if it takes one.
    form: BTreeSet<String>,
    /// The names of its header parameters.
    headers: BTreeSet<String>,
}

/// A schema, with a `$ref` to the spec's components followed.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => &spec["components"]["schemas"][name],
        None => schema,
    }
}

/// Every operation in the served spec, by operationId.
async fn served_operations(app: &TestApp) -> BTreeMap<String, Served> {
    let resp = app.get("/api/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let spec: Value = resp.json().await.unwrap();
    let mut ops = BTreeMap::new();
    for (path, item) in spec["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if !SPEC_METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
                .to_owned();
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let parameters = |place: &str| {
                op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == place)
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect::<BTreeSet<_>>()
            };
            let query = parameters("query");
            let headers = parameters("header");
            let form_schema = resolve(
                &spec,
                &op["requestBody"]["content"]["multipart/form-data"]["schema"],
            );
            let form = form_schema["properties"]
                .as_object()
                .into_iter()
                .flat_map(|fields| fields.keys().cloned())
                .collect();
            let served = Served {
                method,
                path: path.clone(),
                secured,
                query,
                form,
                headers,
            };
            let previous = ops.insert(id.clone(), served);
            assert!(previous.is_none(), "operationId {id} is used twice");
        }
    }
    ops
}

/// The spec and the table must name the same operations.
fn assert_table_matches_spec(served: &BTreeMap<String, Served>) {
    let table: BTreeSet<&str> = EXPECTATIONS.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        table.len(),
        EXPECTATIONS.len(),
        "an operation is listed twice"
    );
    let spec: BTreeSet<&str> = served.keys().map(String::as_str).collect();
    let unlisted: Vec<_> = spec.difference(&table).collect();
    let stale: Vec<_> = table.difference(&spec).collect();
    assert!(
        unlisted.is_empty(),
        "operations in the spec without an authorization rule (add them to EXPECTATIONS): {unlisted:?}"
    );
    assert!(
        stale.is_empty(),
        "EXPECTATIONS lists operations the spec does not have: {stale:?}"
    );
    for (id, rules) in EXPECTATIONS {
        let Served {
            method,
            path,
            secured,
            query,
            form,
            headers,
        } = &served[*id];
        let public = rules.contains(&Rule::Public);
        assert_eq!(
            public, !secured,
            "{id} ({method} {path}): the table says public={public}, the spec's security says otherwise"
        );
        for rule in *rules {
            let subject = rule.subject();
            let fits = path.contains("{project_id}") == (subject == Subject::ProjectPath)
                && (subject == Subject::Session
                    || path.contains("{id}")
                        == matches!(
                            subject,
                            Subject::Item | Subject::Upload | Subject::AdminJob | Subject::Passkey
                        ))
                && match subject {
                    Subject::ProjectQuery => query.contains("project_id"),
                    Subject::ProjectForm => form.contains("project_id") && form.contains("file"),
                    Subject::ProjectMetadata => headers.contains("Upload-Metadata"),
                    Subject::Upload => path.starts_with("/api/uploads/"),
                    Subject::AdminJob => path.starts_with("/api/admin/jobs/"),
                    Subject::Session => path.starts_with("/api/auth/"),
                    Subject::Passkey => path.starts_with("/api/auth/passkeys/"),
                    Subject::Platform | Subject::ProjectPath | Subject::Item => true,
                };
            assert!(
                fits,
                "{id} ({method} {path}, query {query:?}, form {form:?}, headers {headers:?}): \
                 rule {rule:?} (subject {subject:?}) does not fit the operation"
            );
        }
    }
}

async fn every_operation_follows_the_authorization_matrix(backend: Backend) {
    let mut world = World::new(backend).await;
    let served = served_operations(&world.app).await;
    assert_table_matches_spec(&served);

    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (operation_id, rules) in EXPECTATIONS {
        let Served {
            method,
            path: template,
            ..
        } = &served[*operation_id];
        for &rule in *rules {
            match rule {
                Rule::Public => {
                    // Valid but harmless input: anything but a server error will do.
                    let (path, body) = world
                        .request_for(operation_id, template, rule, Who::Anonymous, None)
                        .await;
                    let resp = world
                        .send_payload(None, method.clone(), &path, body.as_ref())
                        .await;
                    // Google sign-in is off here: 501 `google_signin_disabled`.
                    let off = operation_id.starts_with("auth_google_")
                        && resp.status() == StatusCode::NOT_IMPLEMENTED;
                    assert!(
                        off || !resp.status().is_server_error(),
                        "{operation_id} ({method} {path}) answered {}",
                        resp.status()
                    );
                    continue;
                }
                Rule::InvitationToken => {
                    invitation_tokens_are_bound_to_the_invited_email(&mut world, template).await;
                    continue;
                }
                _ => {}
            }
            let targets: &[Option<Target>] = if rule.project_scoped() {
                &[
                    Some(Target::Own),
                    Some(Target::Foreign),
                    Some(Target::Deleted),
                ]
            } else {
                &[None]
            };
            for &target in targets {
                for &who in Who::asked(rule) {
                    let expect = expected(rule, who, target);
                    let (path, payload) = world
                        .request_for(operation_id, template, rule, who, target)
                        .await;
                    let resp = world
                        .send_as(who, method.clone(), &path, payload.as_ref())
                        .await;
                    checked += 1;
                    let answer = if *method == Method::HEAD {
                        check_head(&resp, expect)
                    } else {
                        check(resp, expect).await
                    };
                    let mut outcome = answer.and_then(|body| {
                        if rule == Rule::ListItems
                            && who == Who::Contributor
                            && expect == Expect::Allowed
                        {
                            shows_only_own_items(&body, &world.ids[&who])
                        } else {
                            Ok(())
                        }
                    });
                    if consumes_upload(operation_id) {
                        let spent = world.spend_upload(operation_id, expect).await;
                        outcome = outcome.and(spent);
                    }
                    if let Err(why) = outcome {
                        let on = match (target, rule.subject()) {
                            (None, Subject::Upload) => {
                                " on the contributor's upload (in own project A)".to_owned()
                            }
                            (None, _) => String::new(),
                            (Some(t), Subject::Item) => format!(" on an item in {t}"),
                            (Some(t), _) => format!(" on {t}"),
                        };
                        let variant = if rule == Rule::Leave { " (leave)" } else { "" };
                        failures.push(format!(
                            "{operation_id}{variant} as {who}{on} [{method} {path}]: {why}"
                        ));
                    }
                    world.case_token = None;
                    if *operation_id == "auth_logout_all"
                        && let Some(email) = who.email()
                    {
                        let token = world.app.token(email, PASSWORD).await;
                        world.tokens.insert(who, token);
                    }
                    if let Some(target) = target
                        && who != Who::Anonymous
                    {
                        if destructive(operation_id) {
                            world.fixtures.remove(&target);
                        } else if consumes_item(operation_id)
                            && let Some(kind) = Kind::of(operation_id)
                        {
                            world.discard_item(target, kind);
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 200, "only {checked} cases ran");
    assert!(
        failures.is_empty(),
        "{} of {checked} authorization cases disagree with the matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `invitation_accept` answers to the invited address, not to a role: everyone else
/// signed in gets 403 `invitation_email_mismatch` (super admins too), anonymous 401, an
/// unknown token 404, and an invitation into a deleted project 404.
async fn invitation_tokens_are_bound_to_the_invited_email(world: &mut World, template: &str) {
    let accept_path = |token: &str| template.replace("{token}", token);
    let own = world.fixture(Target::Own).await;
    let n = world.next();
    let invitee = format!("late-{n}@example.org");
    let owner = world.owner.clone();
    world
        .invite(&owner, &own.project_id, &invitee, "reviewer")
        .await;
    let name: Value = world
        .app
        .get_auth(&format!("/api/projects/{}", own.project_id), &owner)
        .await
        .json()
        .await
        .unwrap();
    let name = name["name"].as_str().unwrap().to_owned();
    let token = invitation_token(&world.app, &invitee, &name).await;
    let path = accept_path(&token);

    let mut failures = Vec::new();
    let outcome = check(
        world.send(None, Method::POST, &path, None).await,
        Expect::Denied(StatusCode::UNAUTHORIZED),
    )
    .await;
    if let Err(why) = outcome {
        failures.push(format!("invitation_accept as anonymous: {why}"));
    }
    for who in [
        Who::Stranger,
        Who::Contributor,
        Who::Reviewer,
        Who::Admin,
        Who::SuperAdmin,
    ] {
        let resp = world.send_as(who, Method::POST, &path, None).await;
        let expect = Expect::Problem(StatusCode::FORBIDDEN, "invitation_email_mismatch");
        if let Err(why) = check(resp, expect).await {
            failures.push(format!("invitation_accept as {who} (other email): {why}"));
        }
    }
    // The invitee joins, once.
    let invitee_token = world.app.signed_up_user(&invitee).await;
    let resp = world.accept(&invitee_token, &token).await;
    if resp.status() != StatusCode::OK {
        failures.push(format!(
            "invitation_accept by the invitee: expected 200, got {}",
            resp.status()
        ));
    }
    let resp = world.accept(&invitee_token, &token).await;
    if let Err(why) = check(resp, Expect::Denied(StatusCode::NOT_FOUND)).await {
        failures.push(format!("invitation_accept, second use: {why}"));
    }
    let resp = world
        .send_as(
            Who::Stranger,
            Method::POST,
            &accept_path("not-a-real-token"),
            None,
        )
        .await;
    if let Err(why) = check(resp, Expect::Denied(StatusCode::NOT_FOUND)).await {
        failures.push(format!("invitation_accept with an unknown token: {why}"));
    }

    // An invitation into a project deleted since: the right person still gets 404.
    let deleted = world.build_fixture(Target::Deleted).await;
    let pending_token =
        invitation_token(&world.app, &deleted.invitation_email, &deleted.name).await;
    let pending_user = world.app.signed_up_user(&deleted.invitation_email).await;
    let resp = world.accept(&pending_user, &pending_token).await;
    if let Err(why) = check(resp, Expect::Denied(StatusCode::NOT_FOUND)).await {
        failures.push(format!(
            "invitation_accept by the invitee of soft-deleted project D: {why}"
        ));
    }
    assert!(
        failures.is_empty(),
        "invitation_accept disagrees with the matrix:\n{}",
        failures.join("\n")
    );
}
