//! Google sign-in (OpenID Connect, authorization code + PKCE) end to end, on both
//! backends, against a small OpenID provider on loopback: discovery, a JWKS, an
//! authorization endpoint that hands out codes, and a token endpoint that checks the
//! client secret, the redirect URI and the PKCE verifier (S256) and returns a real
//! RS256-signed ID token, which a test can spoil in one way or another.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use aws_lc_rs::signature::KeyPair as _;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::{
    EndpointExt, Response, Route, Server, get, handler,
    http::StatusCode as PoemStatus,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::{Data, Form, Query},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem},
};

backend_tests!(
    a_google_sign_in_creates_a_verified_account_and_signs_it_in_again,
    a_google_sign_in_links_a_verified_account_and_refuses_an_unverified_one,
    refused_google_sign_ins_change_nothing,
    google_sign_in_is_disabled_without_a_client_id,
);

const CLIENT_ID: &str = "alta-test.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "alta-test-client-secret";
const FRONTEND: &str = "http://app.test/signin/google";
const KID: &str = "test-key-1";

/// An RSA key, for signing, with its public JWK parts.
struct SigningKey {
    encoding: EncodingKey,
    n: String,
    e: String,
}

fn signing_key() -> SigningKey {
    let (pair, pem) = crate::helpers::rsa_key();
    let public = pair.public_key();
    SigningKey {
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }
}

/// The provider's key, and another that is not in its JWKS (made once per run).
fn keys() -> &'static (SigningKey, SigningKey) {
    static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
    KEYS.get_or_init(|| (signing_key(), signing_key()))
}

/// Who signs in at the provider next.
#[derive(Debug, Clone)]
struct Person {
    sub: String,
    email: String,
    email_verified: bool,
    name: String,
}

fn person(sub: &str, email: &str) -> Person {
    Person {
        sub: sub.into(),
        email: email.into(),
        email_verified: true,
        name: "Ada Lovelace".into(),
    }
}

/// How the next ID token is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    None,
    WrongNonce,
    WrongAudience,
    WrongIssuer,
    Expired,
    /// Signed with a key not in the JWKS, under the JWKS key's `kid`.
    ForeignKey,
    /// Signed with a key not in the JWKS, under a `kid` the JWKS does not have.
    UnknownKid,
}

struct Grant {
    person: Person,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Provider {
    issuer: String,
    person: Mutex<Person>,
    tamper: Mutex<Tamper>,
    codes: Mutex<HashMap<String, Grant>>,
    jwks_fetches: AtomicUsize,
    tokens_issued: AtomicUsize,
}

impl Provider {
    fn sign_in_as(&self, person: Person) {
        *self.person.lock().unwrap() = person;
    }

    fn spoil(&self, tamper: Tamper) {
        *self.tamper.lock().unwrap() = tamper;
    }
}

fn json_reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(PoemStatus::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
fn discovery(p: Data<&Arc<Provider>>) -> Response {
    let issuer = &p.issuer;
    json_reply(
        200,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/o/oauth2/v2/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/oauth2/v3/certs"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["plain", "S256"],
        }),
    )
}

#[handler]
fn jwks(p: Data<&Arc<Provider>>) -> Response {
    p.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let key = &keys().0;
    json_reply(
        200,
        json!({"keys": [
            // One Google does not sign ID tokens with: skipped.
            {"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256", "n": key.n, "e": key.e},
        ]}),
    )
}

/// The sign-in page, skipped: the person set with `sign_in_as` agrees at once.
#[handler]
fn authorize(p: Data<&Arc<Provider>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let param = |k: &str| q.get(k).cloned().unwrap_or_default();
    let wanted = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("code_challenge_method", "S256"),
    ];
    if wanted.iter().any(|(k, v)| param(k) != *v)
        || !param("scope").split(' ').any(|s| s == "openid")
        || ["state", "nonce", "code_challenge", "redirect_uri"]
            .iter()
            .any(|k| param(k).is_empty())
    {
        return json_reply(400, json!({"error": "invalid_request", "query": q}));
    }
    let code = format!("4/{}", uuid::Uuid::new_v4().simple());
    p.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            person: p.person.lock().unwrap().clone(),
            nonce: param("nonce"),
            challenge: param("code_challenge"),
            redirect_uri: param("redirect_uri"),
        },
    );
    let mut back = url::Url::parse(&param("redirect_uri")).unwrap();
    back.query_pairs_mut()
        .append_pair("state", &param("state"))
        .append_pair("code", &code)
        .append_pair("scope", "email profile openid");
    Response::builder()
        .status(PoemStatus::FOUND)
        .header("location", back.as_str())
        .finish()
}

#[handler]
fn token(p: Data<&Arc<Provider>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return json_reply(401, json!({"error": "invalid_client"}));
    }
    // Codes work once.
    let Some(grant) = p.codes.lock().unwrap().remove(&field("code")) else {
        return json_reply(400, json!({"error": "invalid_grant"}));
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if field("grant_type") != "authorization_code"
        || field("redirect_uri") != grant.redirect_uri
        || challenge != grant.challenge
    {
        return json_reply(400, json!({"error": "invalid_grant"}));
    }
    let tamper = *p.tamper.lock().unwrap();
    let now = chrono::Utc::now().timestamp();
    let (iat, exp) = if tamper == Tamper::Expired {
        (now - 7200, now - 3600)
    } else {
        (now, now + 3600)
    };
    let claims = json!({
        "iss": if tamper == Tamper::WrongIssuer { "https://issuer.example.org".to_owned() } else { p.issuer.clone() },
        "azp": CLIENT_ID,
        "aud": if tamper == Tamper::WrongAudience { "another-client.apps.googleusercontent.com" } else { CLIENT_ID },
        "sub": grant.person.sub,
        "email": grant.person.email,
        "email_verified": grant.person.email_verified,
        "name": grant.person.name,
        "at_hash": "ignored",
        "nonce": if tamper == Tamper::WrongNonce { "not-the-nonce".to_owned() } else { grant.nonce },
        "iat": iat,
        "exp": exp,
    });
    let (own, foreign) = keys();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(
        if tamper == Tamper::UnknownKid {
            "rotated-away"
        } else {
            KID
        }
        .into(),
    );
    let key = match tamper {
        Tamper::ForeignKey | Tamper::UnknownKid => &foreign.encoding,
        _ => &own.encoding,
    };
    let id_token = jsonwebtoken::encode(&header, &claims, key).unwrap();
    p.tokens_issued.fetch_add(1, Ordering::SeqCst);
    json_reply(
        200,
        json!({
            "access_token": "ya29.fake",
            "expires_in": 3599,
            "token_type": "Bearer",
            "scope": "openid email profile",
            "id_token": id_token,
        }),
    )
}

/// The fake provider, on a free loopback port.
async fn fake_provider() -> Arc<Provider> {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let provider = Arc::new(Provider {
        issuer: format!("http://{addr}"),
        person: Mutex::new(person("100000000000000000001", "ada@example.org")),
        tamper: Mutex::new(Tamper::None),
        codes: Mutex::new(HashMap::new()),
        jwks_fetches: AtomicUsize::new(0),
        tokens_issued: AtomicUsize::new(0),
    });
    let app = Route::new()
        .at("/.well-known/openid-configuration", get(discovery))
        .at("/oauth2/v3/certs", get(jwks))
        .at("/o/oauth2/v2/auth", get(authorize))
        .at("/token", post(token))
        .data(Arc::clone(&provider));
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });
    provider
}

async fn spawn(backend: Backend) -> (TestApp, Arc<Provider>) {
    let provider = fake_provider().await;
    let app = TestAppBuilder::new(backend)
        .var("GOOGLE_CLIENT_ID", CLIENT_ID)
        .var("GOOGLE_CLIENT_SECRET", CLIENT_SECRET)
        .var("GOOGLE_ISSUER_URL", provider.issuer.as_str())
        .var("GOOGLE_SIGNIN_REDIRECT_URL", FRONTEND)
        .spawn()
        .await;
    (app, provider)
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A sign-in started in a browser: where it went, and its binding cookie.
struct Started {
    authorize_url: String,
    cookie: String,
}

async fn start(app: &TestApp, provider: &Provider) -> Started {
    let resp = app.get("/api/auth/google/login").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = header(&resp, "location");
    let url = url::Url::parse(&location).unwrap();
    assert!(
        location.starts_with(&format!("{}/o/oauth2/v2/auth?", provider.issuer)),
        "{location}"
    );
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        "http://alta.test/api/auth/google/callback"
    );
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    let set_cookie = header(&resp, "set-cookie");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/api/auth/google/callback"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("alta_google_signin="), "{cookie}");
    Started {
        authorize_url: location,
        cookie,
    }
}

/// The provider's redirect back (the path and query on our server).
async fn authorize_at_provider(app: &TestApp, started: &Started) -> String {
    let resp = app.client.get(&started.authorize_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    header(&resp, "location")
        .strip_prefix("http://alta.test")
        .expect("back to GOOGLE_REDIRECT_URI")
        .to_owned()
}

/// Send the browser to the callback; the fragment of the frontend URL it is sent on to.
async fn callback(app: &TestApp, path: &str, cookie: Option<&str>) -> HashMap<String, String> {
    let mut req = app.client.get(app.url(path));
    if let Some(cookie) = cookie {
        req = req.header("cookie", format!("theme=dark; {cookie}"));
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cleared = header(&resp, "set-cookie");
    assert!(
        cleared.starts_with("alta_google_signin=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let location = header(&resp, "location");
    let (base, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(base, FRONTEND);
    url::form_urlencoded::parse(fragment.as_bytes())
        .into_owned()
        .collect()
}

/// A whole sign-in up to the frontend's fragment.
async fn sign_in(app: &TestApp, provider: &Provider) -> HashMap<String, String> {
    let started = start(app, provider).await;
    let back = authorize_at_provider(app, &started).await;
    callback(app, &back, Some(&started.cookie)).await
}

fn refused(fragment: &HashMap<String, String>, code: &str) {
    assert_eq!(
        fragment.get("error").map(String::as_str),
        Some(code),
        "{fragment:?}"
    );
    assert!(!fragment.contains_key("code"), "{fragment:?}");
    assert!(!fragment["request_id"].is_empty());
}

async fn exchange(app: &TestApp, code: &str) -> reqwest::Response {
    app.post_json("/api/auth/google/exchange", &json!({"code": code}))
        .await
}

/// A whole sign-in, exchanged: the token body.
async fn tokens(app: &TestApp, provider: &Provider) -> Value {
    let fragment = sign_in(app, provider).await;
    let code = fragment
        .get("code")
        .unwrap_or_else(|| panic!("sign-in refused: {fragment:?}"));
    let resp = exchange(app, code).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Rows a refused sign-in must not add.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    users: i64,
    identities: i64,
    sessions: i64,
    login_codes: i64,
}

async fn counts(app: &TestApp) -> Counts {
    let db = app.db().await;
    let mut n = Vec::new();
    for table in ["users", "user_identities", "sessions", "login_codes"] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        n.push(
            alta_actors::with_db!(&db, |pool| sqlx::query_scalar::<_, i64>(
                sqlx::AssertSqlSafe(sql.clone())
            )
            .fetch_one(pool)
            .await)
            .unwrap(),
        );
    }
    db.close().await;
    Counts {
        users: n[0],
        identities: n[1],
        sessions: n[2],
        login_codes: n[3],
    }
}

async fn a_google_sign_in_creates_a_verified_account_and_signs_it_in_again(backend: Backend) {
    let (app, provider) = spawn(backend).await;
    let body = tokens(&app, &provider).await;
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let access = body["access_token"].as_str().unwrap();
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    let me = app.get_json("/api/auth/me", access).await;
    assert_eq!(me["email"], "ada@example.org", "{me}");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["full_name"], "Ada Lovelace");
    assert_eq!(me["role"], "user");
    let sessions = app.get_json("/api/auth/sessions", access).await;
    let items = sessions["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{sessions}");
    assert_eq!(items[0]["method"], "google");

    // The refresh token works like any other.
    let refreshed = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refresh_token": body["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    // The account has no password: password login is refused.
    let resp = app.login("ada@example.org", PASSWORD).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // The same Google account again, with a new address at Google: the same user.
    provider.sign_in_as(person("100000000000000000001", "ada.lovelace@example.org"));
    let again = tokens(&app, &provider).await;
    let me_again = app
        .get_json("/api/auth/me", again["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me_again["id"], me["id"]);
    assert_eq!(me_again["email"], "ada@example.org");
    let c = counts(&app).await;
    assert_eq!((c.users, c.identities, c.sessions), (1, 1, 2), "{c:?}");
    let sessions = app
        .get_json(
            "/api/auth/sessions",
            again["access_token"].as_str().unwrap(),
        )
        .await;
    assert!(
        sessions["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["method"] == "google"),
        "{sessions}"
    );
    // The provider's keys were fetched once for both sign-ins.
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 1);
}

async fn a_google_sign_in_links_a_verified_account_and_refuses_an_unverified_one(backend: Backend) {
    let (app, provider) = spawn(backend).await;
    let password_token = app.signed_up_user("grace@example.org").await;
    let grace = app.get_json("/api/auth/me", &password_token).await;

    provider.sign_in_as(person("200000000000000000002", "Grace@Example.org"));
    let body = tokens(&app, &provider).await;
    let me = app
        .get_json("/api/auth/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["id"], grace["id"], "linked to the existing account");
    // Both ways in work.
    app.token("grace@example.org", PASSWORD).await;
    let c = counts(&app).await;
    assert_eq!((c.users, c.identities), (1, 1), "{c:?}");

    // An account that never confirmed its address is not linked: whoever registered it
    // may not own it.
    assert_eq!(
        app.register("mallory@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let before = counts(&app).await;
    provider.sign_in_as(person("300000000000000000003", "mallory@example.org"));
    refused(&sign_in(&app, &provider).await, "account_not_verified");
    assert_eq!(counts(&app).await, before);

    // Once confirmed, it links.
    let link = app.verification_link("mallory@example.org").await;
    assert_eq!(app.follow(&link).await.status(), StatusCode::OK);
    let body = tokens(&app, &provider).await;
    let me = app
        .get_json("/api/auth/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["email"], "mallory@example.org");
}

async fn refused_google_sign_ins_change_nothing(backend: Backend) {
    let (app, provider) = spawn(backend).await;
    let before = counts(&app).await;

    // The person cancels at Google: the state is left alone, the frontend told.
    let started = start(&app, &provider).await;
    let back = authorize_at_provider(&app, &started).await;
    let state = url::Url::parse(&format!("http://x{back}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let denied = format!("/api/auth/google/callback?error=access_denied&state={state}");
    refused(
        &callback(&app, &denied, Some(&started.cookie)).await,
        "access_denied",
    );
    // Another browser (no cookie, or someone else's) cannot use the state: login CSRF.
    refused(&callback(&app, &back, None).await, "invalid_state");
    let other = start(&app, &provider).await;
    refused(
        &callback(&app, &back, Some(&other.cookie)).await,
        "invalid_state",
    );
    // An unknown state.
    let code = back
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    refused(
        &callback(
            &app,
            &format!("/api/auth/google/callback?state=made-up&code={code}"),
            Some(&started.cookie),
        )
        .await,
        "invalid_state",
    );
    assert_eq!(counts(&app).await, before);
    // The right browser still can; then the state is spent: a replay is refused.
    let fragment = callback(&app, &back, Some(&started.cookie)).await;
    assert!(fragment.contains_key("code"), "{fragment:?}");
    let after_one = counts(&app).await;
    refused(
        &callback(&app, &back, Some(&started.cookie)).await,
        "invalid_state",
    );
    assert_eq!(counts(&app).await, after_one);

    // The one-time code works once; presented again, it also ends the session it
    // opened (someone else may hold a copy).
    let resp = exchange(&app, &fragment["code"]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let first: Value = resp.json().await.unwrap();
    let first_access = first["access_token"].as_str().unwrap();
    assert_eq!(
        app.get_auth("/api/auth/me", first_access).await.status(),
        StatusCode::OK
    );
    let after_exchange = counts(&app).await;
    assert_problem(
        exchange(&app, &fragment["code"]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_login_code",
    )
    .await;
    assert_eq!(
        app.get_auth("/api/auth/me", first_access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    assert_problem(
        exchange(&app, "not-a-code").await,
        StatusCode::UNAUTHORIZED,
        "invalid_login_code",
    )
    .await;
    // And for 60 seconds.
    let late = sign_in(&app, &provider).await;
    app.advance_clock(chrono::Duration::seconds(61)).await;
    assert_problem(
        exchange(&app, &late["code"]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_login_code",
    )
    .await;
    // A sign-in not finished within 10 minutes is refused.
    let slow = start(&app, &provider).await;
    let slow_back = authorize_at_provider(&app, &slow).await;
    app.advance_clock(chrono::Duration::minutes(11)).await;
    refused(
        &callback(&app, &slow_back, Some(&slow.cookie)).await,
        "invalid_state",
    );
    let mut expected = after_exchange;
    expected.login_codes += 1; // the late one, never exchanged
    assert_eq!(counts(&app).await, expected);

    // Spoiled ID tokens, for a new Google account: nobody is created or signed in.
    provider.sign_in_as(person("400000000000000000004", "eve@example.org"));
    let baseline = counts(&app).await;
    let fetches = provider.jwks_fetches.load(Ordering::SeqCst);
    for tamper in [
        Tamper::WrongNonce,
        Tamper::WrongAudience,
        Tamper::WrongIssuer,
        Tamper::Expired,
        Tamper::ForeignKey,
    ] {
        provider.spoil(tamper);
        let issued = provider.tokens_issued.load(Ordering::SeqCst);
        refused(&sign_in(&app, &provider).await, "invalid_id_token");
        assert_eq!(
            provider.tokens_issued.load(Ordering::SeqCst),
            issued + 1,
            "{tamper:?}: the token endpoint was asked"
        );
        assert_eq!(counts(&app).await, baseline, "{tamper:?}");
    }
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), fetches);
    // An unknown key id fetches the keys again (rotation), once, and still refuses.
    provider.spoil(Tamper::UnknownKid);
    refused(&sign_in(&app, &provider).await, "invalid_id_token");
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), fetches + 1);
    assert_eq!(counts(&app).await, baseline);
    provider.spoil(Tamper::None);

    // An address Google has not verified is neither linked nor given an account.
    let mut unverified = person("500000000000000000005", "ada@example.org");
    unverified.email_verified = false;
    provider.sign_in_as(unverified);
    refused(&sign_in(&app, &provider).await, "google_email_not_verified");
    assert_eq!(counts(&app).await, baseline);

    // A code the provider does not know (or a verifier that does not match it).
    let started = start(&app, &provider).await;
    let back = authorize_at_provider(&app, &started).await;
    let forged = back.replace("code=4%2F", "code=4%2Fx");
    refused(
        &callback(&app, &forged, Some(&started.cookie)).await,
        "token_exchange_failed",
    );
    assert_eq!(counts(&app).await, baseline);

    // A disabled account is refused.
    provider.sign_in_as(person("100000000000000000001", "ada@example.org"));
    let db = app.db().await;
    let disabled_at = chrono::Utc::now();
    alta_actors::with_db!(&db, |pool| sqlx::query(
        "UPDATE users SET disabled_at = $1 WHERE email = 'ada@example.org'"
    )
    .bind(disabled_at)
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    db.close().await;
    refused(&sign_in(&app, &provider).await, "account_disabled");
    assert_eq!(counts(&app).await, baseline);
}

async fn google_sign_in_is_disabled_without_a_client_id(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    for resp in [
        app.get("/api/auth/google/login").await,
        app.get("/api/auth/google/callback?code=x&state=y").await,
        exchange(&app, "whatever").await,
    ] {
        let body =
            assert_problem(resp, StatusCode::NOT_IMPLEMENTED, "google_signin_disabled").await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("GOOGLE_CLIENT_ID"),
            "{body}"
        );
    }
}
