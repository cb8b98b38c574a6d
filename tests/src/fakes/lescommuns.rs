//! A fake Les Communs hub, following `lescommuns-api.md`: routes at the host
//! root (trailing slashes tolerated), Bearer API keys mapped to platforms with
//! the hub's exact 401 bodies, strict validation (unknown properties refused,
//! `message` an array), collectivités checked against a small geographic
//! reference, `POST /projets` as an upsert on (platform, `externalId`), PATCH
//! semantics, UUID v7 ids, and the public services route whose answers a test
//! scripts per projet. Failures can be injected; every request is logged.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

mod validation;

use validation::validate;

/// Recoco's key: its projets carry their external id in `recocoId`.
pub const API_KEY: &str = "recoco-hub-api-key-0001";
/// Another partner's key (its external ids live in `mecId`).
pub const OTHER_PLATFORM_KEY: &str = "mec-hub-api-key-0002";
/// Largest JSON body the hub accepts; larger ones get a 500 (observed).
pub const MAX_BODY_BYTES: usize = 100 * 1024;

const PORTEUR_KEYS: [&str; 6] = [
    "codeSiret",
    "referentEmail",
    "referentTelephone",
    "referentPrenom",
    "referentNom",
    "referentFonction",
];
const PHASES: [&str; 3] = ["Idée", "Étude", "Opération"];
const STATUTS: [&str; 6] = [
    "En cours",
    "En retard",
    "En pause",
    "Bloqué",
    "Abandonné",
    "Terminé",
];
/// Writable columns besides `porteur`, `collectivites` and `externalId`.
const COLUMNS: [&str; 13] = [
    "nom",
    "description",
    "budgetPrevisionnel",
    "dateDebutPrevisionnelle",
    "phase",
    "phaseStatut",
    "programme",
    "competences",
    "leviers",
    "classificationThematiques",
    "classificationSites",
    "classificationInterventions",
    "probabiliteTE",
];

#[derive(Debug, Clone)]
pub struct HubLogged {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub authorization: Option<String>,
    pub body: Option<Value>,
}

pub struct Inner {
    /// API key → external-id column of its platform.
    pub keys: HashMap<String, String>,
    /// Geographic reference: INSEE code → commune name; SIREN → EPCI name.
    pub communes: HashMap<String, String>,
    pub epcis: HashMap<String, String>,
    /// Projets by hub id, in the shape `GET /projets/{id}` returns.
    pub projets: BTreeMap<String, Value>,
    /// Services answers per `recocoId`, in order; the last one repeats.
    services: HashMap<String, VecDeque<Value>>,
    /// Statuses forced on the next requests, any route.
    pub fail_next: VecDeque<u16>,
    /// Whether a 429 carries `Retry-After: 1` (the throttler may leave it out).
    pub retry_after_on_429: bool,
    pub log: Vec<HubLogged>,
}

#[derive(Clone)]
pub struct FakeHub {
    /// `http://127.0.0.1:PORT`, the hub root.
    pub url: String,
    pub inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

impl FakeHub {
    pub async fn start() -> Self {
        let keys = [(API_KEY, "recocoId"), (OTHER_PLATFORM_KEY, "mecId")];
        let communes = [
            ("79888", "Saint-Albin-des-Prés"),
            ("44109", "Nantes"),
            ("01053", "Bourg-en-Bresse"),
        ];
        let inner = Arc::new(Mutex::new(Inner {
            keys: keys
                .iter()
                .map(|(k, c)| (k.to_string(), c.to_string()))
                .collect(),
            communes: communes
                .iter()
                .map(|(k, n)| (k.to_string(), n.to_string()))
                .collect(),
            epcis: [("200071678".to_string(), "CC du Thouarsais".to_string())].into(),
            projets: BTreeMap::new(),
            services: HashMap::new(),
            fail_next: VecDeque::new(),
            retry_after_on_429: true,
            log: Vec::new(),
        }));
        let router = Router::new().fallback(handle).with_state(inner.clone());
        Self {
            url: super::serve(router).await,
            inner,
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn log(&self) -> Vec<HubLogged> {
        self.with(|s| s.log.clone())
    }

    /// Logged requests with this method whose path starts with `prefix`.
    pub fn requests(&self, method: &str, prefix: &str) -> Vec<HubLogged> {
        self.log()
            .into_iter()
            .filter(|l| l.method == method && l.path.starts_with(prefix))
            .collect()
    }

    pub fn projets(&self) -> Vec<Value> {
        self.with(|s| s.projets.values().cloned().collect())
    }

    /// The projet Recoco shared for project `external_id`.
    pub fn projet_of(&self, external_id: &str) -> Option<Value> {
        self.with(|s| {
            s.projets
                .values()
                .find(|p| p["recocoId"] == external_id)
                .cloned()
        })
    }

    /// The services of Recoco project `external_id`: each answer in turn, the
    /// last one for every later request.
    pub fn script_services(&self, external_id: &str, answers: Vec<Value>) {
        self.with(|s| s.services.insert(external_id.into(), answers.into()));
    }

    /// What the hub's qualification jobs do, later: fill competences and leviers.
    pub fn qualify(&self, external_id: &str, competences: Value, leviers: Value) {
        self.with(|s| {
            for p in s
                .projets
                .values_mut()
                .filter(|p| p["recocoId"] == external_id)
            {
                p["competences"] = competences.clone();
                p["leviers"] = leviers.clone();
            }
        });
    }

    pub fn delete_projet(&self, id: &str) {
        self.with(|s| s.projets.remove(id));
    }

    pub fn fail_next(&self, statuses: &[u16]) {
        self.with(|s| s.fail_next.extend(statuses));
    }
}

fn reply(status: u16, body: Value) -> (u16, Value) {
    (status, body)
}

fn error(status: u16, message: Value, error: &str) -> (u16, Value) {
    reply(
        status,
        json!({"statusCode": status, "message": message, "error": error}),
    )
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn is_uuid(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::parse_str(id).is_ok()
}

async fn handle(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let mut s = st.lock().unwrap();
    let (status, answer) = route(
        &mut s,
        &method,
        &uri,
        authorization.as_deref(),
        &body,
        parsed.as_ref(),
    );
    s.log.push(HubLogged {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        status,
        authorization,
        body: parsed,
    });
    let mut response = (StatusCode::from_u16(status).unwrap(), Json(answer)).into_response();
    if status == 429 && s.retry_after_on_429 {
        response
            .headers_mut()
            .insert("retry-after", "1".parse().unwrap());
    }
    response
}

fn route(
    s: &mut Inner,
    method: &Method,
    uri: &Uri,
    authorization: Option<&str>,
    raw: &[u8],
    body: Option<&Value>,
) -> (u16, Value) {
    if let Some(status) = s.fail_next.pop_front() {
        return match status {
            429 => reply(
                429,
                json!({"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}),
            ),
            500 => internal_error(uri),
            other => error(other, json!("injected failure"), "Injected"),
        };
    }
    if raw.len() > MAX_BODY_BYTES {
        return internal_error(uri);
    }
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let query: HashMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["services", "project", id]) => services(s, id, query.get("idType")),
        (m, ["projets", ..]) if ["POST", "PATCH", "GET"].contains(&m) => {
            let column = match authenticate(s, authorization) {
                Ok(column) => column,
                Err(refused) => return refused,
            };
            match (m, &segments[1..]) {
                ("POST", []) => create(s, &column, body),
                ("PATCH", [id]) => patch(s, id, body),
                ("GET", [id]) => read(s, id),
                _ => not_found_route(method, uri),
            }
        }
        _ => not_found_route(method, uri),
    }
}

fn internal_error(uri: &Uri) -> (u16, Value) {
    reply(
        500,
        json!({"statusCode": 500, "errorInstanceId": uuid::Uuid::now_v7().to_string(),
            "timestamp": now(), "path": uri.path(), "message": "Internal server error"}),
    )
}

fn not_found_route(method: &Method, uri: &Uri) -> (u16, Value) {
    error(
        404,
        json!(format!("Cannot {method} {}", uri.path())),
        "Not Found",
    )
}

fn authenticate(s: &Inner, authorization: Option<&str>) -> Result<String, (u16, Value)> {
    let Some(key) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return Err(error(
            401,
            json!("Invalid authorization header format"),
            "Unauthorized",
        ));
    };
    s.keys
        .get(key)
        .cloned()
        .ok_or_else(|| error(401, json!("Invalid API key"), "Unauthorized"))
}

fn create(s: &mut Inner, column: &str, body: Option<&Value>) -> (u16, Value) {
    let body = match validate(s, body, true) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let external = body["externalId"].as_str().unwrap().to_string();
    let existing = s
        .projets
        .iter()
        .find(|(_, p)| p[column] == external.as_str())
        .map(|(id, _)| id.clone());
    let id = existing.unwrap_or_else(|| {
        let id = uuid::Uuid::now_v7().to_string();
        let mut fresh = json!({"id": id, "createdAt": now(), "porteur": null, "collectivites": [],
            "classificationScores": null, "mecId": null, "tetId": null, "recocoId": null});
        for c in COLUMNS {
            fresh[c] = Value::Null;
        }
        fresh[column] = json!(external);
        s.projets.insert(id.clone(), fresh);
        id
    });
    let collectivites = render_collectivites(s, &body["collectivites"]);
    let projet = s.projets.get_mut(&id).unwrap();
    // An upsert overwrites every column of the body, nulls and [] included.
    for c in COLUMNS.iter().chain(&["classificationScores"]) {
        if let Some(v) = body.get(*c) {
            projet[*c] = v.clone();
        }
    }
    if !body["phase"].is_null() && body["phaseStatut"].is_null() {
        projet["phaseStatut"] = json!("En cours");
    }
    // Porteur fields absent from the body are reset.
    let porteur: Map<String, Value> = PORTEUR_KEYS
        .iter()
        .map(|k| {
            (
                k.to_string(),
                body["porteur"].get(*k).cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    projet["porteur"] = if porteur.values().all(Value::is_null) {
        Value::Null
    } else {
        Value::Object(porteur)
    };
    projet["collectivites"] = collectivites;
    projet["updatedAt"] = json!(now());
    reply(201, json!({"id": id}))
}

fn patch(s: &mut Inner, id: &str, body: Option<&Value>) -> (u16, Value) {
    if !is_uuid(id) {
        return error(400, json!(["id must be a UUID"]), "Bad Request");
    }
    if !s.projets.contains_key(id) {
        return error(
            404,
            json!(format!("Projet with ID {id} not found")),
            "Not Found",
        );
    }
    let body = match validate(s, body, false) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let collectivites = match body.get("collectivites") {
        Some(Value::Array(items)) if !items.is_empty() => {
            Some(render_collectivites(s, &body["collectivites"]))
        }
        _ => None, // an empty list is ignored
    };
    let projet = s.projets.get_mut(id).unwrap();
    for c in COLUMNS.iter().chain(&["classificationScores"]) {
        if let Some(v) = body.get(*c) {
            projet[*c] = v.clone();
        }
    }
    if let Some(Value::Object(given)) = body.get("porteur") {
        if projet["porteur"].is_null() {
            projet["porteur"] = Value::Object(
                PORTEUR_KEYS
                    .iter()
                    .map(|k| (k.to_string(), Value::Null))
                    .collect(),
            );
        }
        for (k, v) in given.iter().filter(|(_, v)| !v.is_null()) {
            projet["porteur"][k] = v.clone(); // absent or null: unchanged
        }
    }
    if let Some(c) = collectivites {
        projet["collectivites"] = c;
    }
    projet["updatedAt"] = json!(now());
    reply(200, json!({"id": id}))
}

fn read(s: &Inner, id: &str) -> (u16, Value) {
    if !is_uuid(id) {
        return error(400, json!(["id must be a UUID"]), "Bad Request");
    }
    match s.projets.get(id) {
        Some(p) => reply(200, p.clone()),
        None => error(
            404,
            json!(format!("Projet with ID {id} not found")),
            "Not Found",
        ),
    }
}

fn services(s: &mut Inner, id: &str, id_type: Option<&String>) -> (u16, Value) {
    let projet = match id_type.map(String::as_str) {
        Some("communId") if !is_uuid(id) => {
            return error(
                400,
                json!("ID invalide : doit être un UUID valide"),
                "Bad Request",
            )
        }
        Some("tetId") => s.projets.values().find(|p| p["tetId"] == id),
        _ => s.projets.get(id),
    };
    let Some(projet) = projet else {
        let kind = id_type.map_or("undefined", String::as_str);
        return error(
            404,
            json!(format!("Projet with {kind} {id} not found")),
            "Not Found",
        );
    };
    let external = projet["recocoId"].as_str().unwrap_or_default().to_string();
    let answer = match s.services.get_mut(&external) {
        Some(answers) if answers.len() > 1 => answers.pop_front().unwrap(),
        Some(answers) => answers.front().cloned().unwrap_or(json!([])),
        None => json!([]),
    };
    reply(200, answer)
}

/// Collectivités as the hub renders them, from validated `{type, code}` items.
fn render_collectivites(s: &Inner, items: &Value) -> Value {
    let items = items.as_array().cloned().unwrap_or_default();
    Value::Array(
        items
            .iter()
            .map(|c| {
                let code = c["code"].as_str().unwrap_or_default();
                let commune = c["type"] == "Commune";
                let nom = if commune {
                    &s.communes[code]
                } else {
                    &s.epcis[code]
                };
                json!({"id": uuid::Uuid::now_v7().to_string(), "nom": nom, "type": c["type"],
                    "codeInsee": if commune { json!(code) } else { Value::Null },
                    "codeEpci": if commune { Value::Null } else { json!(code) },
                    "codeDepartements": [code.get(..2).unwrap_or_default()], "codeRegions": ["75"],
                    "siren": if commune { Value::Null } else { json!(code) }})
            })
            .collect(),
    )
}
