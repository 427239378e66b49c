//! `/api/auth/google`: sign in with Google (OpenID Connect authorization code + PKCE).
//! The browser goes to `login`, Google sends it back to `callback`, which sends it on to
//! the frontend with a one-time code that the frontend exchanges for tokens.

use alta_actors::{
    Engine,
    accounts::{GoogleCallbackInput, GoogleCookie},
    context::RequestContext,
};
use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, payload::Json};

use crate::{
    auth::{LoginResponse, TokenResponse},
    json_body::JsonBody,
    problem::ApiResult,
    tags::ApiTags,
};

pub struct GoogleApi;

#[derive(ApiResponse)]
pub enum GoogleLoginRedirect {
    /// To Google's sign-in page. Sets the cookie that binds the sign-in to this browser.
    #[oai(status = 302)]
    Found(
        #[oai(header = "Location")] String,
        #[oai(header = "Set-Cookie")] String,
    ),
}

#[derive(ApiResponse)]
pub enum GoogleCallbackRedirect {
    /// To the frontend (`GOOGLE_SIGNIN_REDIRECT_URL`) with `#code=…` on success, or
    /// `#error=<code>&request_id=…`. Clears the binding cookie.
    #[oai(status = 303)]
    SeeOther(
        #[oai(header = "Location")] String,
        #[oai(header = "Set-Cookie")] String,
    ),
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct GoogleExchangeRequest {
    /// The `code` from the fragment of the redirect to the frontend.
    #[oai(validator(max_length = 256))]
    pub code: String,
}

fn set_cookie(cookie: &GoogleCookie, value: &str) -> String {
    let mut header = format!(
        "{}={value}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax",
        cookie.name, cookie.path, cookie.max_age_secs
    );
    if cookie.secure {
        header.push_str("; Secure");
    }
    header
}

/// The value of cookie `name` in the request's `Cookie` header(s).
fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

#[OpenApi(tag = "ApiTags::Auth")]
impl GoogleApi {
    /// Sign in with Google
    ///
    /// Open this in the browser (a link or `window.location`, not `fetch`): it answers 302
    /// to Google's sign-in page, with `state`, `nonce` and a PKCE challenge whose
    /// secrets stay on the server, and sets a short-lived cookie binding the sign-in to
    /// this browser. Google then sends the browser to `GET /api/auth/google/callback`.
    /// 501 `google_signin_disabled` when the server has no `GOOGLE_CLIENT_ID`.
    #[oai(
        path = "/api/auth/google/login",
        method = "get",
        operation_id = "auth_google_login"
    )]
    async fn login(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
    ) -> ApiResult<GoogleLoginRedirect> {
        let start = engine.accounts().google_login(&ctx).await?;
        Ok(GoogleLoginRedirect::Found(
            start.location,
            set_cookie(&start.cookie, &start.browser_binding),
        ))
    }

    /// Google's redirect back
    ///
    /// Google sends the browser here (`GOOGLE_REDIRECT_URI`); nobody else calls it. The
    /// sign-in's state is spent (once, within 10 minutes, from the browser that started
    /// it), the code exchanged at Google and the ID token verified. Then the account
    /// linked to the Google account signs in; or the account with the same email is
    /// linked to it (both addresses verified; an account that has not confirmed its
    /// address is refused); or a new, verified account is created. The answer is always
    /// 303 to the frontend (`GOOGLE_SIGNIN_REDIRECT_URL`): with `#code=…` (exchange it
    /// within 60 seconds at `POST /api/auth/google/exchange`), or with
    /// `#error=<code>&request_id=…`, the code being one of `access_denied`,
    /// `provider_error`, `invalid_state`, `token_exchange_failed`, `invalid_id_token`,
    /// `google_email_not_verified`, `account_not_verified`, `account_disabled`,
    /// `invalid_email`, `rate_limited`, `service_unavailable`, `internal_error`.
    #[oai(
        path = "/api/auth/google/callback",
        method = "get",
        operation_id = "auth_google_callback"
    )]
    async fn callback(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        req: &Request,
        /// The authorization code.
        code: Query<Option<String>>,
        /// The state sent to Google.
        state: Query<Option<String>>,
        /// Google's error (`access_denied` when the person cancelled).
        error: Query<Option<String>>,
    ) -> ApiResult<GoogleCallbackRedirect> {
        let input = GoogleCallbackInput {
            code: code.0,
            state: state.0,
            error: error.0,
            browser_binding: cookie_value(req, alta_actors::accounts::GOOGLE_BINDING_COOKIE),
        };
        let redirect = engine.accounts().google_callback(input, &ctx).await?;
        Ok(GoogleCallbackRedirect::SeeOther(
            redirect.location,
            set_cookie(&redirect.cookie, ""),
        ))
    }

    /// Exchange a Google sign-in code for tokens
    ///
    /// The frontend's last step: the `code` from the fragment, once, within 60 seconds.
    /// Answers like `POST /api/auth/login`; the session's method is `google`. 401
    /// `invalid_login_code` for an unknown, expired or used code; 403 `account_disabled`.
    #[oai(
        path = "/api/auth/google/exchange",
        method = "post",
        operation_id = "auth_google_exchange"
    )]
    async fn exchange(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<GoogleExchangeRequest>,
    ) -> ApiResult<LoginResponse> {
        let tokens = engine.accounts().google_exchange(&body.code, &ctx).await?;
        Ok(LoginResponse::Ok(Json(TokenResponse::from(tokens))))
    }
}
