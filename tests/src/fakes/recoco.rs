//! A fake Recoco portal API (`/api/...`), following `recoco-api.md`: JWT at
//! `/token/` with a configurable access lifetime, expired tokens refused with
//! `403 token_not_valid`, limit/offset pagination with absolute `next` links,
//! projects (detail and list shapes), survey sessions, answers and questions,
//! and resource add-ons with their validation rules, projects created and
//! deleted while a client walks the list (pages that shift). Every request is
//! logged.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const USERNAME: &str = "sync@example.org";
pub const PASSWORD: &str = "sync-password-123";

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub authorization: Option<String>,
}

pub struct Inner {
    pub access_lifetime: Duration,
    /// Issue JWTs as Recoco (simplejwt) does, whose `exp` says when they end;
    /// otherwise opaque `access-N` tokens (whose end a client cannot know).
    pub jwt_tokens: bool,
    /// Refuse every refresh token (`401 token_not_valid`): clients log in again.
    pub refuse_refresh: bool,
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
    next_token: u64,
    pub logins: u32,
    pub refreshes: u32,
    /// Detail-shaped projects by id.
    pub projects: BTreeMap<i64, Value>,
    /// Soft-deleted ids: 404 on detail, absent from lists.
    pub deleted: HashSet<i64>,
    /// `{id, survey, project}`.
    pub sessions: Vec<Value>,
    /// Answers by session id.
    pub answers: HashMap<i64, Vec<Value>>,
    pub questions: Vec<Value>,
    /// Tasks (recommendations) by id: `{id, resource: {...} | null}`.
    pub tasks: HashMap<i64, Value>,
    pub addons: BTreeMap<i64, Value>,
    next_addon: i64,
    /// Statuses forced on the next API requests (after authentication).
    pub fail_next: VecDeque<u16>,
    pub log: Vec<Logged>,
    /// Time every request waits before being answered (a slow portal).
    pub latency: Duration,
    /// Project list pages served so far.
    pub list_requests: usize,
    /// The API user lacks "manage resources": add-on routes answer 403.
    pub addons_forbidden: bool,
    /// Changes made to the portal while a client walks the project list, each
    /// right after the list page numbered `after` is served: the pages that
    /// follow shift, as they do in Recoco (newest first, limit/offset).
    pub during_list: Vec<ListChange>,
}

/// Projects created and deleted between two list pages.
#[derive(Debug, Clone, Default)]
pub struct ListChange {
    /// Applied once this many list pages were served.
    pub after: usize,
    /// Detail-shaped projects created (the newest: they go to the first page).
    pub create: Vec<Value>,
    /// Ids soft-deleted.
    pub delete: Vec<i64>,
}

#[derive(Clone)]
pub struct FakeRecoco {
    /// `http://127.0.0.1:PORT/api`: a source's `api_url`.
    pub api_url: String,
    pub inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

impl FakeRecoco {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            access_lifetime: Duration::from_secs(300),
            jwt_tokens: false,
            refuse_refresh: false,
            access: HashMap::new(),
            refresh: HashSet::new(),
            next_token: 1,
            logins: 0,
            refreshes: 0,
            projects: BTreeMap::new(),
            deleted: HashSet::new(),
            sessions: Vec::new(),
            answers: HashMap::new(),
            questions: Vec::new(),
            tasks: HashMap::new(),
            addons: BTreeMap::new(),
            next_addon: 1,
            fail_next: VecDeque::new(),
            log: Vec::new(),
            latency: Duration::ZERO,
            list_requests: 0,
            addons_forbidden: false,
            during_list: Vec::new(),
        }));
        let router = Router::new()
            .route("/api/token/", post(token))
            .route("/api/token/refresh/", post(refresh))
            .route("/api/projects/", get(list_projects))
            .route("/api/projects/{id}/", get(project_detail))
            .route("/api/survey/sessions/", get(list_sessions))
            .route("/api/survey/sessions/{id}/answers/", get(list_answers))
            .route("/api/survey/questions/", get(list_questions))
            .route("/api/resource-addons/", get(list_addons).post(create_addon))
            .route(
                "/api/resource-addons/{id}/",
                get(get_addon)
                    .put(put_addon)
                    .patch(patch_addon)
                    .delete(delete_addon),
            )
            .fallback(no_route)
            .layer(axum::middleware::from_fn_with_state(
                inner.clone(),
                slow_down,
            ))
            .with_state(inner.clone());
        let base = super::serve(router).await;
        Self {
            api_url: format!("{base}/api"),
            inner,
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn add_project(&self, project: Value) {
        let id = project["id"].as_i64().expect("project id");
        self.with(|s| s.projects.insert(id, project));
    }

    /// A session of survey 12 for `project` with `answers`.
    pub fn add_session(&self, session_id: i64, project: i64, answers: Vec<Value>) {
        self.with(|s| {
            s.sessions
                .push(json!({"id": session_id, "survey": 12, "project": project}));
            s.answers.insert(session_id, answers);
        });
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    pub fn logins(&self) -> u32 {
        self.with(|s| s.logins)
    }
}

/// Waits `latency` before handling each request.
async fn slow_down(
    State(st): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let latency = st.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    next.run(request).await
}

fn record(s: &mut Inner, method: &str, uri: &Uri, status: u16, headers: &HeaderMap) {
    s.log.push(Logged {
        method: method.to_string(),
        path: uri.to_string(),
        status,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
}

/// Token number `n` of `kind` (`access`, `refresh`), living `lifetime`.
fn token_text(s: &Inner, kind: &str, n: u64, lifetime: Duration) -> String {
    if !s.jwt_tokens {
        return format!("{kind}-{n}");
    }
    use base64::Engine as _;
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let iat = chrono::Utc::now().timestamp();
    let exp = iat + lifetime.as_secs().max(1) as i64;
    format!(
        "{}.{}.{}",
        enc(json!({"alg": "HS256", "typ": "JWT"})),
        enc(
            json!({"token_type": kind, "exp": exp, "iat": iat, "jti": format!("{kind}{n}"), "user_id": 7})
        ),
        enc(json!("fake-signature"))
    )
}

fn issue(s: &mut Inner) -> (String, String) {
    let n = s.next_token;
    s.next_token += 1;
    let access = token_text(s, "access", n, s.access_lifetime);
    let refresh = token_text(s, "refresh", n, Duration::from_secs(86_400));
    s.access
        .insert(access.clone(), Instant::now() + s.access_lifetime);
    s.refresh.insert(refresh.clone());
    (access, refresh)
}

/// Credentials as JSON or as a form.
fn credentials(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        return url_form(body);
    }
    serde_json::from_slice::<HashMap<String, Value>>(body)
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace('+', " ").replace("%40", "@")))
        .collect()
}

async fn token(State(st): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let creds = credentials(&headers, &body);
    let mut s = st.lock().unwrap();
    let mut missing = serde_json::Map::new();
    for field in ["username", "password"] {
        if creds.get(field).is_none_or(|v| v.is_empty()) {
            missing.insert(field.into(), json!(["Ce champ est obligatoire."]));
        }
    }
    let (status, body) = if !missing.is_empty() {
        (400, Value::Object(missing))
    } else if creds["username"] != USERNAME || creds["password"] != PASSWORD {
        (
            401,
            json!({"detail": "Aucun compte actif n'a été trouvé avec les identifiants fournis"}),
        )
    } else {
        s.logins += 1;
        let (access, refresh) = issue(&mut s);
        (200, json!({"refresh": refresh, "access": access}))
    };
    record(&mut s, "POST", &uri, status, &headers);
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

async fn refresh(State(st): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let given = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["refresh"].as_str().map(str::to_string));
    let mut s = st.lock().unwrap();
    let (status, body) = match given {
        Some(r) if s.refresh.contains(&r) && !s.refuse_refresh => {
            s.refreshes += 1;
            let n = s.next_token;
            s.next_token += 1;
            let access = token_text(&s, "access", n, s.access_lifetime);
            let expiry = Instant::now() + s.access_lifetime;
            s.access.insert(access.clone(), expiry);
            (200, json!({"access": access}))
        }
        Some(_) => (
            401,
            json!({"detail": "Le jeton est invalide ou expiré", "code": "token_not_valid"}),
        ),
        None => (400, json!({"refresh": ["Ce champ est obligatoire."]})),
    };
    record(&mut s, "POST", &uri, status, &headers);
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

/// Authenticates like DRF with the session class first: every failure is 403.
/// The `Err` is the answer to send back (a test fake: size does not matter).
#[allow(clippy::result_large_err)]
fn authorize(s: &mut Inner, method: &str, uri: &Uri, headers: &HeaderMap) -> Result<(), Response> {
    let refuse = |s: &mut Inner, body: Value| {
        record(s, method, uri, 403, headers);
        Err((StatusCode::FORBIDDEN, Json(body)).into_response())
    };
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return refuse(
            s,
            json!({"detail": "Informations d'authentification non fournies."}),
        );
    };
    let valid = auth
        .strip_prefix("Bearer ")
        .and_then(|t| s.access.get(t))
        .is_some_and(|exp| *exp > Instant::now());
    if !valid {
        return refuse(
            s,
            json!({"detail": "Le type de jeton fourni n'est pas valide", "code": "token_not_valid",
                "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Le jeton est invalide ou expiré"}]}),
        );
    }
    if s.addons_forbidden && uri.path().starts_with("/api/resource-addons/") {
        return refuse(
            s,
            json!({"detail": "Vous n'avez pas la permission d'effectuer cette action."}),
        );
    }
    if let Some(status) = s.fail_next.pop_front() {
        record(s, method, uri, status, headers);
        let mut response = (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"detail": "injected failure"})),
        )
            .into_response();
        if status == 429 {
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
        }
        return Err(response);
    }
    Ok(())
}

fn ok(
    s: &mut Inner,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    status: u16,
    body: Value,
) -> Response {
    record(s, method, uri, status, headers);
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

/// One page of `items` with absolute `next`/`previous` links.
fn page(
    headers: &HeaderMap,
    uri: &Uri,
    query: &HashMap<String, String>,
    items: Vec<Value>,
    max: Option<usize>,
) -> Value {
    let mut limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(50);
    if let Some(max) = max {
        limit = limit.min(max);
    }
    let limit = limit.max(1);
    let offset: usize = query
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let link = |off: usize| {
        let mut params: Vec<String> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "limit" && k.as_str() != "offset")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        params.sort();
        params.push(format!("limit={limit}"));
        params.push(format!("offset={off}"));
        format!("http://{host}{}?{}", uri.path(), params.join("&"))
    };
    let count = items.len();
    let results: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    json!({
        "count": count,
        "next": if offset + limit < count { json!(link(offset + limit)) } else { Value::Null },
        "previous": if offset > 0 { json!(link(offset.saturating_sub(limit))) } else { Value::Null },
        "results": results,
    })
}

/// The list serializer: UTC `Z` datetimes, lighter advisors, an owner, no counters.
fn list_item(detail: &Value) -> Value {
    let mut item = detail.clone();
    let map = item.as_object_mut().unwrap();
    for key in [
        "recommendation_count",
        "public_message_count",
        "private_message_count",
        "is_diagnostic_done",
        "notifications",
    ] {
        map.remove(key);
    }
    for key in ["created_on", "updated_on", "inactive_since", "deleted"] {
        if let Some(Value::String(s)) = map.get(key) {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                let utc = t
                    .with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string();
                map.insert(key.into(), json!(utc));
            }
        }
    }
    if let Some(Value::Array(advisors)) = map.get_mut("switchtenders") {
        for a in advisors.iter_mut() {
            let org = a["profile"]["organization"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            *a = json!({"first_name": a["first_name"], "last_name": a["last_name"], "username": a["username"],
                "email": a["email"], "profile": {"organization": {"name": org}}});
        }
    }
    map.entry("owner").or_insert(Value::Null);
    item
}

async fn list_projects(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "GET", &uri, &headers) {
        return r;
    }
    let mut items: Vec<&Value> = s
        .projects
        .iter()
        .filter(|(id, _)| !s.deleted.contains(id))
        .map(|(_, p)| p)
        .collect();
    // Newest first, like Recoco.
    items.sort_by(|a, b| {
        let t = |p: &Value| {
            chrono::DateTime::parse_from_rfc3339(p["created_on"].as_str().unwrap_or("")).ok()
        };
        t(b).cmp(&t(a))
            .then(b["id"].as_i64().cmp(&a["id"].as_i64()))
    });
    let items: Vec<Value> = items.into_iter().map(list_item).collect();
    let body = page(&headers, &uri, &q, items, Some(1000));
    s.list_requests += 1;
    let served = s.list_requests;
    let (due, later): (Vec<ListChange>, Vec<ListChange>) = std::mem::take(&mut s.during_list)
        .into_iter()
        .partition(|c| c.after <= served);
    s.during_list = later;
    for change in due {
        for p in change.create {
            let id = p["id"].as_i64().expect("project id");
            s.projects.insert(id, p);
        }
        s.deleted.extend(change.delete);
    }
    ok(&mut s, "GET", &uri, &headers, 200, body)
}

async fn project_detail(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "GET", &uri, &headers) {
        return r;
    }
    match s
        .projects
        .get(&id)
        .filter(|_| !s.deleted.contains(&id))
        .cloned()
    {
        Some(p) => ok(&mut s, "GET", &uri, &headers, 200, p),
        None => ok(
            &mut s,
            "GET",
            &uri,
            &headers,
            404,
            json!({"detail": "Pas trouvé."}),
        ),
    }
}

async fn list_sessions(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "GET", &uri, &headers) {
        return r;
    }
    let project = q.get("project_id").map(|p| p.parse::<i64>().unwrap_or(-1));
    if let Some(p) = project {
        if !s.projects.contains_key(&p) || s.deleted.contains(&p) {
            let body = json!({"project_id": ["Sélectionnez un choix valide. Ce choix ne fait pas partie de ceux disponibles."]});
            return ok(&mut s, "GET", &uri, &headers, 400, body);
        }
    }
    let items: Vec<Value> = s
        .sessions
        .iter()
        .filter(|x| project.is_none_or(|p| x["project"] == p))
        .cloned()
        .collect();
    let body = page(&headers, &uri, &q, items, None);
    ok(&mut s, "GET", &uri, &headers, 200, body)
}

async fn list_answers(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "GET", &uri, &headers) {
        return r;
    }
    // Unknown session: an empty page, not a 404.
    let items = s.answers.get(&id).cloned().unwrap_or_default();
    let body = page(&headers, &uri, &q, items, None);
    ok(&mut s, "GET", &uri, &headers, 200, body)
}

async fn list_questions(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "GET", &uri, &headers) {
        return r;
    }
    let mut items = s.questions.clone();
    items.sort_by_key(|q| q["id"].as_i64());
    let body = page(&headers, &uri, &q, items, None);
    ok(&mut s, "GET", &uri, &headers, 200, body)
}

async fn list_addons(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "GET", &uri, &headers) {
        return r;
    }
    let mut items: Vec<Value> = s
        .addons
        .values()
        .filter(|a| {
            q.get("recommendation")
                .is_none_or(|r| r.parse::<i64>().ok() == a["recommendation"].as_i64())
        })
        .filter(|a| q.get("nature").is_none_or(|n| a["nature"] == n.as_str()))
        .cloned()
        .collect();
    items.reverse(); // newest first
    let body = page(&headers, &uri, &q, items, Some(1000));
    ok(&mut s, "GET", &uri, &headers, 200, body)
}

/// Validates an add-on body as Recoco's serializer does.
fn validate_addon(s: &Inner, body: &Value, except: Option<i64>) -> Result<(), Value> {
    let Some(task_id) = body["recommendation"].as_i64() else {
        return Err(json!({"recommendation": ["Ce champ est obligatoire."]}));
    };
    let Some(task) = s.tasks.get(&task_id) else {
        return Err(
            json!({"recommendation": [format!("Clé primaire « {task_id} » non valide - l'objet n'existe pas.")]}),
        );
    };
    if task["resource"].is_null() {
        return Err(json!(["Recommendation must be linked to a resource."]));
    }
    let nature = body["nature"].as_str().unwrap_or("");
    if nature.is_empty() || nature.len() > 32 {
        return Err(json!({"nature": ["Ce champ est obligatoire."]}));
    }
    let duplicate = s.addons.iter().any(|(id, a)| {
        Some(*id) != except && a["recommendation"] == task_id && a["nature"] == nature
    });
    if duplicate {
        return Err(
            json!({"non_field_errors": ["Les champs recommendation, nature doivent former un ensemble unique."]}),
        );
    }
    Ok(())
}

async fn create_addon(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "POST", &uri, &headers) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(e) = validate_addon(&s, &body, None) {
        return ok(&mut s, "POST", &uri, &headers, 400, e);
    }
    let id = s.next_addon;
    s.next_addon += 1;
    let addon = json!({"id": id, "nature": body["nature"], "recommendation": body["recommendation"],
        "data": body.get("data").cloned().unwrap_or(json!({})), "enabled": body.get("enabled").cloned().unwrap_or(json!(false))});
    s.addons.insert(id, addon.clone());
    ok(&mut s, "POST", &uri, &headers, 201, addon)
}

async fn get_addon(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "GET", &uri, &headers) {
        return r;
    }
    match s.addons.get(&id).cloned() {
        Some(a) => ok(&mut s, "GET", &uri, &headers, 200, a),
        None => ok(
            &mut s,
            "GET",
            &uri,
            &headers,
            404,
            json!({"detail": "Pas trouvé."}),
        ),
    }
}

async fn write_addon(
    st: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    id: i64,
    body: Bytes,
    partial: bool,
) -> Response {
    let mut s = st.lock().unwrap();
    let m = method.as_str();
    if let Err(r) = authorize(&mut s, m, &uri, &headers) {
        return r;
    }
    let Some(existing) = s.addons.get(&id).cloned() else {
        return ok(
            &mut s,
            m,
            &uri,
            &headers,
            404,
            json!({"detail": "Pas trouvé."}),
        );
    };
    let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut merged = if partial {
        existing.clone()
    } else {
        json!({"id": id, "data": {}, "enabled": false})
    };
    for (k, v) in patch.as_object().cloned().unwrap_or_default() {
        if k != "id" {
            merged[k] = v;
        }
    }
    if let Err(e) = validate_addon(&s, &merged, Some(id)) {
        return ok(&mut s, m, &uri, &headers, 400, e);
    }
    s.addons.insert(id, merged.clone());
    ok(&mut s, m, &uri, &headers, 200, merged)
}

async fn put_addon(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    write_addon(st, method, uri, headers, id, body, false).await
}

async fn patch_addon(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    write_addon(st, method, uri, headers, id, body, true).await
}

async fn delete_addon(
    State(st): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = authorize(&mut s, "DELETE", &uri, &headers) {
        return r;
    }
    if s.addons.remove(&id).is_none() {
        return ok(
            &mut s,
            "DELETE",
            &uri,
            &headers,
            404,
            json!({"detail": "Pas trouvé."}),
        );
    }
    record(&mut s, "DELETE", &uri, 204, &headers);
    StatusCode::NO_CONTENT.into_response()
}

/// Django: a GET without its trailing slash is redirected, anything else is an
/// HTML 404.
async fn no_route(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = st.lock().unwrap();
    if method == Method::GET && !uri.path().ends_with('/') {
        record(&mut s, "GET", &uri, 301, &headers);
        let location = match uri.query() {
            Some(q) => format!("{}/?{q}", uri.path()),
            None => format!("{}/", uri.path()),
        };
        return (StatusCode::MOVED_PERMANENTLY, [("location", location)]).into_response();
    }
    record(&mut s, method.as_str(), &uri, 404, &headers);
    (
        StatusCode::NOT_FOUND,
        [("content-type", "text/html")],
        "<h1>Not Found</h1>",
    )
        .into_response()
}
