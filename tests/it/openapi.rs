//! The admin API's OpenAPI document (issue 12): it is OpenAPI 3.1, documents
//! exactly the routes the admin router serves (read from the router's source,
//! so a new undocumented route fails here), and every answer of a real
//! service, success or error, matches the schema the document declares for
//! its status and content type.

use std::collections::BTreeSet;
use std::time::Duration;

use recoco_sync::store::keys::{self, Scope};
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// The end of the call starting at `open` (the index of its `(`), skipping
/// string literals.
fn matching_paren(text: &[u8], open: usize) -> usize {
    let (mut depth, mut i, mut in_str) = (0, open, false);
    while i < text.len() {
        match (in_str, text[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_str = false,
            (false, b'"') => in_str = true,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced .route( call");
}

/// (method, path) of every `.route("/admin/api/…", get(…).post(…))` in the
/// admin router's source files: the routes it really serves.
fn router_routes() -> BTreeSet<(String, String)> {
    let host = concat!(env!("CARGO_MANIFEST_DIR"), "/../host/src");
    let mut files = vec![std::path::PathBuf::from(format!("{host}/admin.rs"))];
    for entry in std::fs::read_dir(format!("{host}/admin")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let bytes = text.as_bytes();
        for (at, _) in text.match_indices(".route(") {
            let open = at + ".route".len();
            let call = &text[open + 1..matching_paren(bytes, open)];
            let path = call.split('"').nth(1).expect("a route's path literal");
            if !path.starts_with("/admin/api/") {
                continue; // the pages and their assets are not the API
            }
            let mut methods = 0;
            for m in METHODS {
                let needle = format!("{m}(");
                for (i, _) in call.match_indices(&needle) {
                    let before = call[..i].chars().next_back().unwrap_or(' ');
                    if !(before.is_alphanumeric() || before == '_' || before == ':') {
                        routes.insert((m.to_string(), path.to_string()));
                        methods += 1;
                    }
                }
            }
            assert!(methods > 0, "no method found in {file:?}: .route({call})");
        }
    }
    routes
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(*m).is_some() {
                routes.insert((m.to_string(), path.clone()));
            }
        }
    }
    routes
}

/// One request of the walk through the API.
struct Call<'a> {
    method: &'a str,
    /// The documented path template.
    template: &'a str,
    /// The real path, query included.
    path: String,
    body: Option<Body>,
    bearer: Option<&'a str>,
    headers: Vec<(&'static str, String)>,
}

enum Body {
    Json(Value),
    /// Raw bytes with a content type.
    Raw(&'static str, &'static str),
}

fn call<'a>(method: &'a str, template: &'a str, path: impl Into<String>) -> Call<'a> {
    Call {
        method,
        template,
        path: path.into(),
        body: None,
        bearer: None,
        headers: vec![],
    }
}

impl<'a> Call<'a> {
    fn json(mut self, body: Value) -> Self {
        self.body = Some(Body::Json(body));
        self
    }
    fn raw(mut self, content_type: &'static str, body: &'static str) -> Self {
        self.body = Some(Body::Raw(content_type, body));
        self
    }
    fn key(mut self, key: &'a str) -> Self {
        self.bearer = Some(key);
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What came back.
struct Got {
    status: u16,
    json: Value,
    set_cookie: Option<String>,
}

/// Sends requests and validates each answer against the document.
struct Checker<'s> {
    svc: &'s TestService,
    doc: Value,
    /// (method, template) that answered 2xx at least once.
    succeeded: BTreeSet<(String, String)>,
    /// (method, template, status) seen.
    seen: BTreeSet<(String, String, u16)>,
}

impl Checker<'_> {
    /// Sends `c`, checks the answer has status `expect` (one of them) and
    /// matches the document, and returns it.
    async fn send(&mut self, c: Call<'_>, expect: &[u16]) -> Got {
        let method = reqwest::Method::from_bytes(c.method.to_uppercase().as_bytes()).unwrap();
        let mut request = self
            .svc
            .client
            .request(method, format!("{}{}", self.svc.url, c.path));
        if let Some(key) = c.bearer {
            request = request.bearer_auth(key);
        }
        for (name, value) in &c.headers {
            request = request.header(*name, value);
        }
        request = match c.body {
            Some(Body::Json(v)) => request.json(&v),
            Some(Body::Raw(content_type, text)) => {
                request.header("content-type", content_type).body(text)
            }
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        let what = format!("{} {} -> {status} {text:.300}", c.method, c.path);
        assert!(expect.contains(&status), "{what}: expected {expect:?}");
        let json = self.validate(
            c.method,
            c.template,
            status,
            content_type.as_deref(),
            &text,
            &what,
        );
        self.seen
            .insert((c.method.into(), c.template.into(), status));
        if (200..300).contains(&status) {
            self.succeeded.insert((c.method.into(), c.template.into()));
        }
        Got {
            status,
            json,
            set_cookie,
        }
    }

    fn validate(
        &self,
        method: &str,
        template: &str,
        status: u16,
        content_type: Option<&str>,
        text: &str,
        what: &str,
    ) -> Value {
        let op = &self.doc["paths"][template][method];
        assert!(
            op.is_object(),
            "{what}: {method} {template} is not documented"
        );
        let response = op["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| panic!("{what}: status {status} is not documented"));
        let Some(content) = response["content"].as_object().filter(|c| !c.is_empty()) else {
            assert!(
                text.is_empty(),
                "{what}: a body where the document declares none"
            );
            return Value::Null;
        };
        let mime = content_type
            .unwrap_or_else(|| panic!("{what}: no content type"))
            .split(';')
            .next()
            .unwrap()
            .trim();
        let media = content.get(mime).unwrap_or_else(|| {
            panic!(
                "{what}: content type {mime} is not documented ({:?})",
                content.keys().collect::<Vec<_>>()
            )
        });
        let instance = if mime == "application/json" {
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
        } else {
            Value::String(text.to_string())
        };
        let errors = schema_errors(&self.doc, &media["schema"], &instance);
        assert!(
            errors.is_empty(),
            "{what}: the answer does not match {}:\n{}",
            media["schema"],
            errors.join("\n")
        );
        instance
    }
}

/// Why `instance` does not match `schema`, a schema of `doc` (draft 2020-12,
/// OpenAPI 3.1's dialect).
fn schema_errors(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    // The document's components beside the schema, so `#/components/schemas/…` resolves.
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("the declared schema {schema} does not compile: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn config(ok: &Target, failing: &Target) -> String {
    format!(
        "{FAST_QUEUE}\n[alerts]\nfailure_threshold = 1\n{}\
         [[connections]]\nname = \"crm\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/hooks\"\nsecret = \"forward-secret-000000001\"\n\
         [connections.delivery]\nmax_attempts = 1\n\
         [[connections]]\nname = \"echo\"\nsource = {SOURCE:?}\nplugin = \"test-echo\"\n\
         filter = 'object.id == 500'\n\
         schedule = [{{task = \"echo\", every = \"24h\"}}]\n\
         [connections.config]\nurl = \"{}/echo\"\n",
        source_block(None),
        failing.url,
        ok.url,
    )
}

#[tokio::test]
async fn the_document_covers_every_route_and_every_real_answer_matches_it() {
    let ok = Target::start().await;
    let failing = Target::start().await;
    failing.set_default_status(500);
    let echo = recoco_sync_tests::components::echo();
    // A file that is no component: listed as refused.
    let broken = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/it/openapi.rs"));
    let svc = TestService::start(
        &config(&ok, &failing),
        &[("echo.wasm", &echo), ("broken.wasm", broken)],
    )
    .await;

    // The document: no key needed, OpenAPI 3.1, this version.
    let answer = svc
        .client
        .get(format!("{}/admin/api/openapi.json", svc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let doc: Value = answer.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0", "{}", doc["openapi"]);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    // The check can fail: references resolve, and a wrong answer is refused.
    let job_list = json!({"$ref": "#/components/schemas/JobList"});
    assert!(schema_errors(&doc, &job_list, &json!({"jobs": []})).is_empty());
    for wrong in [
        json!({}),
        json!({"jobs": [{"id": 1}]}),
        json!({"jobs": "none"}),
    ] {
        assert!(
            !schema_errors(&doc, &job_list, &wrong).is_empty(),
            "{wrong} passed"
        );
    }
    // Exactly the router's routes.
    let served = router_routes();
    assert!(
        served.len() > 25,
        "the route scan found too little: {served:?}"
    );
    let documented = documented_routes(&doc);
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );

    // Real data: events whose `crm` job dies (its target answers 500, one
    // attempt) while `echo`'s succeeds; an incident; a schedule; state.
    let mut event_ids = Vec::new();
    for n in 0..2 {
        let sent = svc
            .send(envelope(
                "projects.Project",
                "update",
                json!({"id": 500 + n, "name": "Projet"}),
            ))
            .await;
        assert_eq!(sent.status, 200, "{:?}", sent.json);
        event_ids.push(sent.json["id"].as_str().unwrap().to_string());
    }
    for id in &event_ids {
        svc.settled_event(id, WAIT).await;
    }
    let jobs = svc.jobs_of_event(&event_ids[0]).await;
    let mut dead = Vec::new();
    for id in &event_ids {
        for j in svc.jobs_of_event(id).await {
            if j.connection == "crm" {
                assert_eq!(j.state, "dead", "{j:?}");
                dead.push(j.id);
            }
        }
    }
    assert_eq!(dead.len(), 2);
    let succeeded = jobs
        .iter()
        .find(|j| j.connection == "echo")
        .expect("an echo job");
    let succeeded = svc.job_in(&succeeded.id, &["succeeded"], WAIT).await.id;

    // The incident opens in the background, after the dead job.
    let deadline = tokio::time::Instant::now() + WAIT;
    while recoco_sync::store::sql::query_scalar::<i64>(
        "SELECT COUNT(*) FROM alert_incidents WHERE resolved_at IS NULL",
    )
    .fetch_one(&svc.pool)
    .await
    .unwrap()
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "no incident opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Keys exist from now on: no loopback access without one.
    let admin = keys::create(&svc.pool, "ops", Scope::Admin).await.unwrap();
    let read = keys::create(&svc.pool, "viewer", Scope::Read)
        .await
        .unwrap();
    let mut c = Checker {
        svc: &svc,
        doc: doc.clone(),
        succeeded: BTreeSet::new(),
        seen: BTreeSet::new(),
    };
    let k = admin.as_str();
    let evt = event_ids[0].as_str();

    // The document and its page.
    c.send(
        call("get", "/admin/api/openapi.json", "/admin/api/openapi.json"),
        &[200],
    )
    .await;
    c.send(call("get", "/admin/api/docs", "/admin/api/docs"), &[200])
        .await;

    // Refused: no key, a read-only key changing something.
    let refused = c
        .send(
            call("get", "/admin/api/overview", "/admin/api/overview"),
            &[401],
        )
        .await;
    assert!(refused.json["detail"]
        .as_str()
        .unwrap()
        .contains("admin key"));
    c.send(
        call(
            "post",
            "/admin/api/sources/{code}/{action}",
            format!("/admin/api/sources/{SOURCE}/disable"),
        )
        .key(&read),
        &[403],
    )
    .await;

    // Reads.
    let overview = c
        .send(
            call("get", "/admin/api/overview", "/admin/api/overview").key(k),
            &[200],
        )
        .await;
    assert_eq!(overview.json["connections"], 2);
    let listed = c
        .send(
            call(
                "get",
                "/admin/api/events",
                "/admin/api/events?status=failed&limit=10",
            )
            .key(k),
            &[200],
        )
        .await;
    assert!(
        !listed.json["events"].as_array().unwrap().is_empty(),
        "{}",
        listed.json
    );
    c.send(
        call("get", "/admin/api/events", "/admin/api/events?limit=abc").key(k),
        &[400],
    )
    .await;
    let detail = c
        .send(
            call(
                "get",
                "/admin/api/events/{id}",
                format!("/admin/api/events/{evt}"),
            )
            .key(k),
            &[200],
        )
        .await;
    assert_eq!(detail.json["jobs"].as_array().unwrap().len(), 2);
    assert!(
        detail.json["jobs"][0]["attempts_log"][0]["outcome"].is_string(),
        "{}",
        detail.json
    );
    assert_eq!(detail.json["body"]["object"]["id"], 500);
    c.send(
        call(
            "get",
            "/admin/api/events/{id}",
            "/admin/api/events/evt_none",
        )
        .key(k),
        &[404],
    )
    .await;
    // The second event went to crm only: echo's filter dropped it.
    let filtered = c
        .send(
            call(
                "get",
                "/admin/api/events/{id}",
                format!("/admin/api/events/{}", event_ids[1]),
            )
            .key(k),
            &[200],
        )
        .await;
    assert_eq!(
        filtered.json["filtered"][0]["connection"], "echo",
        "{}",
        filtered.json
    );
    c.send(
        call("get", "/admin/api/jobs", "/admin/api/jobs?state=dead").key(k),
        &[200],
    )
    .await;
    c.send(
        call("get", "/admin/api/jobs", "/admin/api/jobs?limit=abc").key(k),
        &[400],
    )
    .await;
    let job = c
        .send(
            call(
                "get",
                "/admin/api/jobs/{id}",
                format!("/admin/api/jobs/{}", dead[0]),
            )
            .key(k),
            &[200],
        )
        .await;
    assert_eq!(
        job.json["attempts_log"][0]["outcome"], "dead",
        "{}",
        job.json
    );
    c.send(
        call("get", "/admin/api/jobs/{id}", "/admin/api/jobs/job_none").key(k),
        &[404],
    )
    .await;
    let plugins = c
        .send(
            call("get", "/admin/api/plugins", "/admin/api/plugins").key(k),
            &[200],
        )
        .await;
    assert!(plugins.json["plugins"].as_array().unwrap().len() >= 2);
    assert!(
        plugins.json["refused"][0]["path"].is_string(),
        "{}",
        plugins.json
    );
    let replicas = c
        .send(
            call("get", "/admin/api/replicas", "/admin/api/replicas").key(k),
            &[200],
        )
        .await;
    // This service alone, up (its heartbeat is written at start).
    assert_eq!(
        replicas.json["replicas"][0]["this"], true,
        "{}",
        replicas.json
    );
    assert_eq!(
        replicas.json["replicas"][0]["state"], "up",
        "{}",
        replicas.json
    );
    c.send(
        call("get", "/admin/api/sources", "/admin/api/sources").key(k),
        &[200],
    )
    .await;
    let connections = c
        .send(
            call("get", "/admin/api/connections", "/admin/api/connections").key(k),
            &[200],
        )
        .await;
    assert_eq!(connections.json["connections"][0]["status"], "ok");
    let circuits = c
        .send(
            call("get", "/admin/api/circuits", "/admin/api/circuits").key(k),
            &[200],
        )
        .await;
    assert!(!circuits.json["circuits"].as_array().unwrap().is_empty());
    let schedules = c
        .send(
            call("get", "/admin/api/schedules", "/admin/api/schedules").key(k),
            &[200],
        )
        .await;
    assert_eq!(
        schedules.json["schedules"][0]["task"], "echo",
        "{}",
        schedules.json
    );
    let state = c
        .send(
            call(
                "get",
                "/admin/api/connections/{name}/state",
                "/admin/api/connections/echo/state",
            )
            .key(k),
            &[200],
        )
        .await;
    assert!(
        state.json["state"]["echo:count"].is_string(),
        "{}",
        state.json
    );
    c.send(
        call(
            "get",
            "/admin/api/connections/{name}/state",
            "/admin/api/connections/none/state",
        )
        .key(k),
        &[404],
    )
    .await;
    c.send(
        call("get", "/admin/api/keys", "/admin/api/keys").key(k),
        &[200],
    )
    .await;
    let dashboard = c
        .send(
            call(
                "get",
                "/admin/api/console/dashboard",
                "/admin/api/console/dashboard",
            )
            .key(k),
            &[200],
        )
        .await;
    assert!(
        !dashboard.json["failing"].as_array().unwrap().is_empty(),
        "{}",
        dashboard.json
    );
    assert!(
        !dashboard.json["open_alerts"].as_array().unwrap().is_empty(),
        "{}",
        dashboard.json
    );
    let page = c
        .send(
            call(
                "get",
                "/admin/api/console/events",
                "/admin/api/console/events?limit=1",
            )
            .key(k),
            &[200],
        )
        .await;
    assert!(page.json["next_before"].is_string(), "{}", page.json);
    let bad = c
        .send(
            call(
                "get",
                "/admin/api/console/events",
                "/admin/api/console/events?status=bogus",
            )
            .key(k),
            &[400],
        )
        .await;
    assert_eq!(bad.json["field"], "status");
    c.send(
        call(
            "get",
            "/admin/api/console/events",
            "/admin/api/console/events?limit=abc",
        )
        .key(k),
        &[400],
    )
    .await;
    c.send(
        call("get", "/admin/api/console/jobs", "/admin/api/console/jobs").key(k),
        &[200],
    )
    .await;
    c.send(
        call(
            "get",
            "/admin/api/console/jobs",
            "/admin/api/console/jobs?state=bogus",
        )
        .key(k),
        &[400],
    )
    .await;
    let alerts = c
        .send(
            call("get", "/admin/api/alerts", "/admin/api/alerts").key(k),
            &[200],
        )
        .await;
    assert!(!alerts.json["alerts"].as_array().unwrap().is_empty());
    c.send(
        call("get", "/admin/api/alerts", "/admin/api/alerts?state=bogus").key(k),
        &[400],
    )
    .await;

    // Bulk action: a dry run, and its refusals.
    let bulk = "/admin/api/console/jobs/bulk";
    let counted = c
        .send(
            call("post", bulk, bulk)
                .key(k)
                .json(json!({"action": "retry"})),
            &[200],
        )
        .await;
    assert_eq!(counted.json["matched"], 2, "{}", counted.json);
    c.send(
        call("post", bulk, bulk)
            .key(k)
            .json(json!({"action": "bogus"})),
        &[400],
    )
    .await;
    c.send(call("post", bulk, bulk).key(k).json(json!({})), &[422])
        .await;
    c.send(
        call("post", bulk, bulk).key(k).raw("application/json", "{"),
        &[400],
    )
    .await;
    c.send(
        call("post", bulk, bulk).key(k).raw("text/plain", "retry"),
        &[415],
    )
    .await;

    // Writes on jobs and events.
    let run_now = "/admin/api/console/jobs/{id}/run-now";
    c.send(
        call(
            "post",
            run_now,
            format!("/admin/api/console/jobs/{}/run-now", dead[1]),
        )
        .key(k),
        &[200],
    )
    .await;
    c.send(
        call(
            "post",
            run_now,
            format!("/admin/api/console/jobs/{succeeded}/run-now"),
        )
        .key(k),
        &[409],
    )
    .await;
    c.send(
        call("post", run_now, "/admin/api/console/jobs/job_none/run-now").key(k),
        &[404],
    )
    .await;
    let retry = "/admin/api/jobs/{id}/retry";
    c.send(
        call("post", retry, format!("/admin/api/jobs/{}/retry", dead[0])).key(k),
        &[200],
    )
    .await;
    c.send(
        call("post", retry, format!("/admin/api/jobs/{succeeded}/retry")).key(k),
        &[400],
    )
    .await;
    c.send(
        call("post", retry, "/admin/api/jobs/job_none/retry").key(k),
        &[404],
    )
    .await;
    c.send(
        call(
            "post",
            "/admin/api/jobs/retry-failed",
            "/admin/api/jobs/retry-failed?connection=crm",
        )
        .key(k),
        &[200],
    )
    .await;
    let replay = "/admin/api/events/{id}/replay";
    let replayed = c
        .send(
            call("post", replay, format!("/admin/api/events/{evt}/replay")).key(k),
            &[200],
        )
        .await;
    assert_eq!(
        replayed.json["jobs"].as_array().unwrap().len(),
        2,
        "{}",
        replayed.json
    );
    c.send(
        call("post", replay, "/admin/api/events/evt_none/replay").key(k),
        &[400],
    )
    .await;

    // Tasks.
    let task = "/admin/api/connections/{name}/tasks/{task}";
    let queued = c
        .send(
            call("post", task, "/admin/api/connections/echo/tasks/echo")
                .key(k)
                .json(json!({"n": 1})),
            &[200],
        )
        .await;
    assert!(queued.json["job_id"].as_str().unwrap().starts_with("job_"));
    c.send(
        call("post", task, "/admin/api/connections/echo/tasks/echo").key(k),
        &[200],
    )
    .await;
    c.send(
        call("post", task, "/admin/api/connections/echo/tasks/nope")
            .key(k)
            .json(json!({})),
        &[400],
    )
    .await;
    c.send(
        call("post", task, "/admin/api/connections/echo/tasks/echo")
            .key(k)
            .raw("application/json", "{"),
        &[400],
    )
    .await;
    c.send(
        call("post", task, "/admin/api/connections/echo/tasks/echo")
            .key(k)
            .raw("text/plain", "x"),
        &[415],
    )
    .await;

    // Enabling and disabling.
    let source = "/admin/api/sources/{code}/{action}";
    for action in ["disable", "enable"] {
        let toggled = c
            .send(
                call(
                    "post",
                    source,
                    format!("/admin/api/sources/{SOURCE}/{action}"),
                )
                .key(k),
                &[200],
            )
            .await;
        assert_eq!(toggled.json["enabled"], action == "enable");
    }
    c.send(
        call("post", source, format!("/admin/api/sources/{SOURCE}/bogus")).key(k),
        &[404],
    )
    .await;
    c.send(
        call("post", source, "/admin/api/sources/none/enable").key(k),
        &[404],
    )
    .await;
    let connection = "/admin/api/connections/{name}/{action}";
    c.send(
        call("post", connection, "/admin/api/connections/crm/disable").key(k),
        &[200],
    )
    .await;

    // Managed configuration: every route, its successes and its refusals.
    let sources = "/admin/api/sources";
    let one_source = "/admin/api/sources/{code}";
    let created = c
        .send(
            call("post", sources, sources)
                .key(k)
                .json(json!({"code": "portal-9"})),
            &[201],
        )
        .await;
    assert!(created.json["generated_secret"].is_string());
    c.send(
        call("post", sources, sources)
            .key(k)
            .json(json!({"code": "portal-9"})),
        &[409],
    )
    .await;
    c.send(
        call("post", sources, sources)
            .key(k)
            .json(json!({"code": "bad code"})),
        &[400],
    )
    .await;
    c.send(
        call("post", sources, sources)
            .key(k)
            .raw("application/json", "{"),
        &[400],
    )
    .await;
    c.send(
        call("post", sources, sources).key(k).raw("text/plain", "x"),
        &[415],
    )
    .await;
    c.send(
        call("get", one_source, "/admin/api/sources/portal-9").key(k),
        &[200],
    )
    .await;
    c.send(
        call("get", one_source, "/admin/api/sources/none").key(k),
        &[404],
    )
    .await;
    c.send(
        call("patch", one_source, "/admin/api/sources/portal-9")
            .key(k)
            .json(json!({"api_url": "https://p9.example/api"})),
        &[200],
    )
    .await;
    c.send(
        call("patch", one_source, format!("/admin/api/sources/{SOURCE}"))
            .key(k)
            .json(json!({"api_url": null})),
        &[409],
    )
    .await;
    c.send(
        call("patch", one_source, "/admin/api/sources/none")
            .key(k)
            .json(json!({})),
        &[404],
    )
    .await;
    let rotate = "/admin/api/sources/{code}/rotate-secret";
    c.send(
        call("post", rotate, "/admin/api/sources/portal-9/rotate-secret")
            .key(k)
            .json(json!({"grace": "1h"})),
        &[200],
    )
    .await;
    c.send(
        call("post", rotate, "/admin/api/sources/portal-9/rotate-secret")
            .key(k)
            .json(json!({"grace": "soon"})),
        &[400],
    )
    .await;
    c.send(
        call("post", rotate, "/admin/api/sources/none/rotate-secret").key(k),
        &[404],
    )
    .await;
    let conns = "/admin/api/connections";
    let one = "/admin/api/connections/{name}";
    let managed = json!({"name": "managed", "source": "portal-9", "plugin": "http-forward",
        "config": {"url": format!("{}/m", ok.url), "secret": "forward-secret-000000001"}});
    c.send(
        call("post", conns, conns).key(k).json(managed.clone()),
        &[201],
    )
    .await;
    c.send(call("post", conns, conns).key(k).json(managed), &[409])
        .await;
    c.send(
        call("post", conns, conns)
            .key(k)
            .json(json!({"name": "x", "source": "none", "plugin": "p"})),
        &[400],
    )
    .await;
    c.send(
        call("get", one, "/admin/api/connections/managed").key(k),
        &[200],
    )
    .await;
    c.send(
        call("get", one, "/admin/api/connections/none").key(k),
        &[404],
    )
    .await;
    c.send(
        call("patch", one, "/admin/api/connections/managed")
            .key(k)
            .json(json!({"filter": "true"})),
        &[200],
    )
    .await;
    c.send(
        call("patch", one, "/admin/api/connections/managed")
            .key(k)
            .json(json!({"filter": "((("})),
        &[400],
    )
    .await;
    c.send(
        call("patch", one, "/admin/api/connections/echo")
            .key(k)
            .json(json!({"filter": null})),
        &[409],
    )
    .await;
    c.send(
        call("patch", one, "/admin/api/connections/none")
            .key(k)
            .json(json!({})),
        &[404],
    )
    .await;
    let secret = "/admin/api/connections/{name}/secret";
    c.send(
        call("post", secret, "/admin/api/connections/managed/secret")
            .key(k)
            .json(json!({"field": "/secret", "value": "another-secret-0000001"})),
        &[200],
    )
    .await;
    c.send(
        call("post", secret, "/admin/api/connections/managed/secret")
            .key(k)
            .json(json!({"field": "/url", "value": "x"})),
        &[400],
    )
    .await;
    c.send(
        call("post", secret, "/admin/api/connections/echo/secret")
            .key(k)
            .json(json!({"field": "/url", "value": "x"})),
        &[409],
    )
    .await;
    c.send(
        call("post", secret, "/admin/api/connections/none/secret")
            .key(k)
            .json(json!({"field": "/x", "value": "x"})),
        &[404],
    )
    .await;
    let apply = "/admin/api/config/apply";
    let plan = c
        .send(
            call("post", apply, apply)
                .key(k)
                .json(json!({"sources": [], "connections": [], "prune": true, "dry_run": true})),
            &[200],
        )
        .await;
    assert_eq!(plan.json["applied"], false);
    c.send(
        call("post", apply, apply).key(k).json(json!({"connections": [{"name": "crm", "source": SOURCE, "plugin": "http-forward",
            "config": {"url": "http://127.0.0.1:1/elsewhere", "secret": "forward-secret-000000001"}}]})),
        &[409],
    )
    .await;
    c.send(
        call("post", apply, apply)
            .key(k)
            .json(json!({"connections": [{"name": "y"}]})),
        &[400],
    )
    .await;
    c.send(
        call("delete", one_source, "/admin/api/sources/portal-9").key(k),
        &[409],
    )
    .await;
    c.send(
        call("delete", one, "/admin/api/connections/echo").key(k),
        &[409],
    )
    .await;
    c.send(
        call("delete", one, "/admin/api/connections/managed").key(k),
        &[200],
    )
    .await;
    c.send(
        call("delete", one, "/admin/api/connections/managed").key(k),
        &[404],
    )
    .await;
    c.send(
        call("delete", one_source, "/admin/api/sources/portal-9").key(k),
        &[200],
    )
    .await;
    c.send(
        call("delete", one_source, "/admin/api/sources/portal-9").key(k),
        &[404],
    )
    .await;
    let paused = c
        .send(
            call(
                "get",
                "/admin/api/console/dashboard",
                "/admin/api/console/dashboard",
            )
            .key(k),
            &[200],
        )
        .await;
    assert_eq!(
        paused.json["paused"][0]["why"], "disabled",
        "{}",
        paused.json
    );
    c.send(
        call("get", "/admin/api/connections", "/admin/api/connections").key(k),
        &[200],
    )
    .await;
    c.send(
        call("post", connection, "/admin/api/connections/crm/enable").key(k),
        &[200],
    )
    .await;
    c.send(
        call("post", connection, "/admin/api/connections/crm/bogus").key(k),
        &[404],
    )
    .await;
    c.send(
        call("post", connection, "/admin/api/connections/none/enable").key(k),
        &[404],
    )
    .await;

    // Sessions.
    let session = "/admin/api/session";
    let bearer = c.send(call("get", session, session).key(k), &[200]).await;
    assert_eq!(bearer.json["mode"], "bearer");
    c.send(call("get", session, session), &[401]).await;
    c.send(
        call("post", session, session).json(json!({"key": "rsk_wrong"})),
        &[401],
    )
    .await;
    c.send(
        call("post", session, session)
            .json(json!({"key": admin}))
            .header("origin", "http://evil.example"),
        &[403],
    )
    .await;
    c.send(call("post", session, session).json(json!({})), &[422])
        .await;
    let signed = c
        .send(
            call("post", session, session).json(json!({"key": admin})),
            &[200],
        )
        .await;
    let cookie = signed
        .set_cookie
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = signed.json["csrf_token"].as_str().unwrap().to_string();
    let mine = c
        .send(
            call("get", session, session).header("cookie", cookie.clone()),
            &[200],
        )
        .await;
    assert_eq!(mine.json["mode"], "session");
    c.send(
        call("delete", session, session).header("cookie", cookie.clone()),
        &[403],
    )
    .await;
    let out = c
        .send(
            call("delete", session, session)
                .header("cookie", cookie.clone())
                .header("x-csrf-token", csrf),
            &[204],
        )
        .await;
    assert_eq!(out.status, 204);

    // Every documented operation answered successfully at least once.
    let missed: Vec<_> = documented.difference(&c.succeeded).collect();
    assert!(
        missed.is_empty(),
        "never exercised with success: {missed:?}"
    );
    eprintln!(
        "checked {} (method, path, status) answers against the document",
        c.seen.len()
    );
    drop(c);
    svc.stop().await;
}

/// The document itself against the official OpenAPI 3.1 schema, through
/// `openapi-spec-validator` (Python; .ci/run installs it). Skipped loudly
/// when it is missing, except under CI where it must be there.
#[test]
fn the_document_is_valid_openapi_3_1() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI: openapi-spec-validator is missing (pip install openapi-spec-validator)"
        );
        eprintln!(
            "SKIPPED: openapi-spec-validator is not installed (pip install openapi-spec-validator)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, recoco_sync::admin::openapi::document_json()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
