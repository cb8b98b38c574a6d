//! The admin API: guarded by its token, lists what operators need.

use recoco_sync_tests::service::{source_block, TestService};

#[tokio::test]
async fn the_admin_api_requires_its_token_when_one_is_set() {
    let svc = TestService::start(
        &format!(
            "admin_token = \"admin-token-123456\"\n{}",
            source_block(None)
        ),
        &[],
    )
    .await;
    let url = format!("{}/admin/api/overview", svc.url);
    let refused = svc.client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = svc
        .client
        .get(&url)
        .bearer_auth("admin-token-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = svc
        .client
        .get(&url)
        .bearer_auth("admin-token-123456")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["sources"], 1);
    // The page itself loads; it asks for the token when the API refuses.
    let page = svc
        .client
        .get(format!("{}/admin", svc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("recoco-sync"));
    svc.stop().await;
}

#[tokio::test]
async fn plugins_are_listed_with_version_hash_and_origin() {
    let svc = TestService::start(
        &source_block(None),
        &[
            ("echo.wasm", &recoco_sync_tests::components::echo()),
            (
                "broken.wasm",
                std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/it/admin.rs")),
            ),
        ],
    )
    .await;
    let answer = svc.admin(reqwest::Method::GET, "/plugins").await;
    let plugins = answer.json["plugins"].as_array().unwrap();
    let forward = plugins
        .iter()
        .find(|p| p["name"] == "http-forward")
        .expect("shipped");
    assert_eq!(forward["origin"]["kind"], "shipped");
    assert_eq!(forward["hash"].as_str().unwrap().len(), 64);
    let echo = plugins
        .iter()
        .find(|p| p["name"] == "test-echo")
        .expect("from the directory");
    assert_eq!(echo["origin"]["kind"], "file");
    assert_eq!(echo["tasks"][0]["name"], "echo");
    let refused = &answer.json["refused"][0];
    assert!(refused["path"].as_str().unwrap().ends_with("broken.wasm"));
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("not a WebAssembly file"));
    svc.stop().await;
}

// ---- keys, sessions, loopback mode (issue 10, "The admin surface") ----

use recoco_sync::store::keys::{self, Scope};

/// A connection on the echo component, and no workers: queued work stays put,
/// so a test sees exactly what each request changed.
fn keyed_setup(extra: &str) -> String {
    format!(
        "{extra}\n[queue]\nworkers = 0\n{}\n[[connections]]\nname = \"echo\"\nsource = {:?}\nplugin = \"test-echo\"\n[connections.config]\nurl = \"http://127.0.0.1:9/unused\"\n",
        source_block(None),
        recoco_sync_tests::service::SOURCE
    )
}

/// How a request authenticates.
#[derive(Default, Clone)]
struct Cred {
    bearer: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
    origin: Option<String>,
}

async fn call(
    svc: &TestService,
    method: reqwest::Method,
    path: &str,
    cred: &Cred,
) -> (u16, serde_json::Value) {
    let mut request = svc
        .client
        .request(method.clone(), format!("{}/admin/api{path}", svc.url));
    if let Some(b) = &cred.bearer {
        request = request.bearer_auth(b);
    }
    if let Some(c) = &cred.cookie {
        request = request.header("cookie", format!("recoco_sync_session={c}"));
    }
    if let Some(t) = &cred.csrf {
        request = request.header("x-csrf-token", t);
    }
    if let Some(o) = &cred.origin {
        request = request.header("origin", o);
    }
    if method == reqwest::Method::POST && path.contains("/tasks/") {
        request = request.json(&serde_json::json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Signs in with `key` like the page does; returns (cookie value, CSRF token, Set-Cookie).
async fn sign_in(svc: &TestService, key: &str) -> (String, String, String) {
    let response = svc
        .client
        .post(format!("{}/admin/api/session", svc.url))
        .header("origin", &svc.url)
        .json(&serde_json::json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "sign-in with a valid key");
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    let value = set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("recoco_sync_session=")
        .unwrap()
        .to_string();
    (
        value,
        body["csrf_token"].as_str().unwrap().to_string(),
        set_cookie,
    )
}

const READS: &[&str] = &[
    "/overview",
    "/events",
    "/events/evt_none",
    "/jobs",
    "/jobs/job_none",
    "/plugins",
    "/sources",
    "/sources/recoco-test",
    "/connections",
    "/connections/echo",
    "/connections/echo/state",
    "/keys",
    "/circuits",
    "/schedules",
    "/console/dashboard",
    "/console/events",
    "/console/jobs",
    "/alerts",
];
/// Every state-changing route, with its method (the task first: it needs the
/// connection enabled). The managed configuration's name nothing that exists,
/// so that they change nothing when they pass.
const WRITES: &[(&str, &str)] = &[
    ("POST", "/connections/echo/tasks/echo"),
    ("POST", "/events/evt_none/replay"),
    ("POST", "/jobs/retry-failed"),
    ("POST", "/jobs/job_none/retry"),
    ("POST", "/sources/recoco-test/disable"),
    ("POST", "/connections/echo/disable"),
    ("POST", "/console/jobs/bulk"),
    ("POST", "/console/jobs/job_none/run-now"),
    ("POST", "/sources"),
    ("PATCH", "/sources/none"),
    ("DELETE", "/sources/none"),
    ("POST", "/sources/none/rotate-secret"),
    ("POST", "/connections"),
    ("PATCH", "/connections/none"),
    ("DELETE", "/connections/none"),
    ("POST", "/connections/none/secret"),
    ("POST", "/config/apply"),
];

fn method(name: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(name.as_bytes()).unwrap()
}

/// (enabled sources, enabled connections, jobs), read from the database directly.
async fn db_state(svc: &TestService) -> (i64, i64, i64) {
    let q = |sql: &'static str| async move {
        recoco_sync::store::sql::query_scalar::<i64>(sql)
            .fetch_one(&svc.pool)
            .await
            .unwrap()
    };
    (
        q("SELECT COUNT(*) FROM sources WHERE enabled").await,
        q("SELECT COUNT(*) FROM connections WHERE enabled").await,
        q("SELECT COUNT(*) FROM jobs").await,
    )
}

#[tokio::test]
async fn every_route_refuses_missing_wrong_and_revoked_keys_and_read_only_writes() {
    let echo = recoco_sync_tests::components::echo();
    let svc = TestService::start(&keyed_setup(""), &[("echo.wasm", &echo)]).await;
    let admin_key = keys::create(&svc.pool, "ops", Scope::Admin).await.unwrap();
    let read_key = keys::create(&svc.pool, "dashboard", Scope::Read)
        .await
        .unwrap();
    let revoked = keys::create(&svc.pool, "old-laptop", Scope::Admin)
        .await
        .unwrap();
    assert!(admin_key.starts_with("rsk_") && admin_key.len() > 40);
    // Only hashes are stored.
    let stored: Vec<String> =
        recoco_sync::store::sql::query_scalar("SELECT key_hash FROM admin_keys")
            .fetch_all(&svc.pool)
            .await
            .unwrap();
    assert!(stored.iter().all(|h| h.len() == 64 && *h != admin_key));
    let (old_cookie, old_csrf, _) = sign_in(&svc, &revoked).await;
    assert!(keys::revoke(&svc.pool, "old-laptop").await.unwrap());

    let none = Cred::default();
    let wrong = Cred {
        bearer: Some("rsk_not-a-key-at-all-000000000000000000000".into()),
        ..Default::default()
    };
    let revoked_bearer = Cred {
        bearer: Some(revoked.clone()),
        ..Default::default()
    };
    let revoked_session = Cred {
        cookie: Some(old_cookie),
        csrf: Some(old_csrf),
        ..Default::default()
    };
    let read = Cred {
        bearer: Some(read_key.clone()),
        ..Default::default()
    };
    let (read_cookie, read_csrf, _) = sign_in(&svc, &read_key).await;
    let read_session = Cred {
        cookie: Some(read_cookie),
        csrf: Some(read_csrf),
        origin: Some(svc.url.clone()),
        ..Default::default()
    };
    let (admin_cookie, admin_csrf, _) = sign_in(&svc, &admin_key).await;

    let every = READS
        .iter()
        .map(|p| (reqwest::Method::GET, *p))
        .chain(WRITES.iter().map(|(m, p)| (method(m), *p)));
    for (method, path) in every {
        for (who, cred) in [
            ("no key", &none),
            ("wrong key", &wrong),
            ("revoked key", &revoked_bearer),
            ("revoked key's session", &revoked_session),
        ] {
            let (status, body) = call(&svc, method.clone(), path, cred).await;
            assert_eq!(status, 401, "{method} {path} with {who}: {body}");
        }
    }
    for path in READS {
        for (who, cred) in [("read key", &read), ("read session", &read_session)] {
            let (status, body) = call(&svc, reqwest::Method::GET, path, cred).await;
            assert!(
                status == 200 || status == 404,
                "GET {path} with {who}: {status} {body}"
            );
        }
    }
    for (name, path) in WRITES {
        let m = method(name);
        for (who, cred) in [("read key", &read), ("read session", &read_session)] {
            let (status, body) = call(&svc, m.clone(), path, cred).await;
            assert_eq!(status, 403, "{m} {path} with {who}: {body}");
            assert!(
                body["detail"].as_str().unwrap().contains("read-only"),
                "{body}"
            );
        }
        // An admin session without its CSRF token, or from another origin, changes nothing.
        let no_csrf = Cred {
            cookie: Some(admin_cookie.clone()),
            ..Default::default()
        };
        let (status, body) = call(&svc, m.clone(), path, &no_csrf).await;
        assert_eq!(status, 403, "{m} {path} without CSRF token: {body}");
        let cross = Cred {
            cookie: Some(admin_cookie.clone()),
            csrf: Some(admin_csrf.clone()),
            origin: Some("http://evil.example".into()),
            ..Default::default()
        };
        assert_eq!(
            call(&svc, m.clone(), path, &cross).await.0,
            403,
            "{m} {path} from another origin"
        );
    }
    assert_eq!(db_state(&svc).await, (1, 1, 0), "nothing changed");
    // The admin key, by bearer and by session with its token, does change things.
    let admin = Cred {
        bearer: Some(admin_key.clone()),
        ..Default::default()
    };
    let (status, body) = call(&svc, method(WRITES[0].0), WRITES[0].1, &admin).await;
    assert_eq!(status, 200, "{body}");
    let session = Cred {
        cookie: Some(admin_cookie),
        csrf: Some(admin_csrf),
        origin: Some(svc.url.clone()),
        ..Default::default()
    };
    for (name, path) in &WRITES[1..] {
        let (status, body) = call(&svc, method(name), path, &session).await;
        assert!(
            status != 401 && status != 403,
            "{name} {path} with the admin session: {status} {body}"
        );
    }
    assert_eq!(db_state(&svc).await, (0, 0, 1));
    // Keys are listed with their last use; never the key.
    let (status, listed) = call(&svc, reqwest::Method::GET, "/keys", &read).await;
    assert_eq!(status, 200);
    let text = listed.to_string();
    assert!(!text.contains(&admin_key) && !text.contains(&read_key));
    let ops = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ops")
        .unwrap();
    assert_eq!(ops["scope"], "admin");
    assert!(ops["last_used_at"].is_string(), "{ops}");
    let old = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "old-laptop")
        .unwrap();
    assert!(old["revoked_at"].is_string());
    svc.stop().await;
}

#[tokio::test]
async fn revoking_a_key_ends_its_access_and_sessions_at_once() {
    let svc = TestService::start(&keyed_setup(""), &[]).await;
    let key = keys::create(&svc.pool, "temp", Scope::Admin).await.unwrap();
    let bearer = Cred {
        bearer: Some(key.clone()),
        ..Default::default()
    };
    let (cookie, csrf, _) = sign_in(&svc, &key).await;
    let session = Cred {
        cookie: Some(cookie),
        csrf: Some(csrf),
        ..Default::default()
    };
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &bearer)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &session)
            .await
            .0,
        200
    );
    // Revoked by another process (the CLI) on the same database: no restart.
    assert!(keys::revoke(&svc.pool, "temp").await.unwrap());
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &bearer)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &session)
            .await
            .0,
        401
    );
    assert!(
        !keys::revoke(&svc.pool, "temp").await.unwrap(),
        "already revoked"
    );
    // Revoking the last key does not reopen the keyless loopback mode.
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &Cred::default())
            .await
            .0,
        401
    );
    // The name can be used again; the old key stays dead.
    let again = keys::create(&svc.pool, "temp", Scope::Read).await.unwrap();
    assert!(
        keys::create(&svc.pool, "temp", Scope::Read).await.is_err(),
        "one active key per name"
    );
    assert_eq!(
        call(
            &svc,
            reqwest::Method::GET,
            "/overview",
            &Cred {
                bearer: Some(again),
                ..Default::default()
            }
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &bearer)
            .await
            .0,
        401
    );
    svc.stop().await;
}

#[tokio::test]
async fn the_bootstrap_token_signs_in_and_sessions_expire_and_sign_out() {
    let svc = TestService::start(
        &keyed_setup("admin_token = \"bootstrap-token-123456\"\n[admin]\nsession_ttl = \"2s\"\n"),
        &[],
    )
    .await;
    let (cookie, csrf, set_cookie) = sign_in(&svc, "bootstrap-token-123456").await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=2"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let session = Cred {
        cookie: Some(cookie.clone()),
        csrf: Some(csrf.clone()),
        ..Default::default()
    };
    let (status, who) = call(&svc, reqwest::Method::GET, "/session", &session).await;
    assert_eq!(status, 200);
    assert_eq!(who["name"], "admin_token");
    assert_eq!(who["scope"], "admin");
    assert_eq!(who["csrf_token"], csrf.as_str());
    // A wrong key does not sign in; the sign-in refuses a foreign page's request.
    let refused = svc
        .client
        .post(format!("{}/admin/api/session", svc.url))
        .json(&serde_json::json!({"key": "bootstrap-token-000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());
    let foreign = svc
        .client
        .post(format!("{}/admin/api/session", svc.url))
        .header("origin", "http://evil.example")
        .json(&serde_json::json!({"key": "bootstrap-token-123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    // A text/plain body (what a cross-site form can send) is not a sign-in.
    let form = svc
        .client
        .post(format!("{}/admin/api/session", svc.url))
        .header("content-type", "text/plain")
        .body("{\"key\": \"bootstrap-token-123456\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    // admin.session_ttl: the session ends by itself.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &session)
            .await
            .0,
        401
    );
    // Sign out: needs the CSRF token, ends the session, clears the cookie.
    let (cookie, csrf, _) = sign_in(&svc, "bootstrap-token-123456").await;
    let session = Cred {
        cookie: Some(cookie),
        csrf: Some(csrf),
        ..Default::default()
    };
    let without_token = Cred {
        csrf: None,
        ..session.clone()
    };
    assert_eq!(
        call(&svc, reqwest::Method::DELETE, "/session", &without_token)
            .await
            .0,
        403
    );
    let out = svc
        .client
        .delete(format!("{}/admin/api/session", svc.url))
        .header(
            "cookie",
            format!("recoco_sync_session={}", session.cookie.as_deref().unwrap()),
        )
        .header("x-csrf-token", session.csrf.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        call(&svc, reqwest::Method::GET, "/overview", &session)
            .await
            .0,
        401
    );
    svc.stop().await;
}

/// A request with an explicit `Host` (what a DNS-rebinding page sends).
async fn with_host(
    svc: &TestService,
    method: reqwest::Method,
    path: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> u16 {
    let mut request = svc
        .client
        .request(method, format!("{}/admin/api{path}", svc.url))
        .header("host", host);
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn without_keys_loopback_clients_must_name_the_service_and_come_from_its_origin() {
    let svc = TestService::start(
        &keyed_setup(
            "[admin]\nallowed_hosts = [\"admin.test\"]\n[intake]\ntrust_forwarded_for = true\n",
        ),
        &[],
    )
    .await;
    let port = svc.url.rsplit(':').next().unwrap().to_string();
    let here = format!("127.0.0.1:{port}");
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    assert_eq!(
        with_host(&svc, get.clone(), "/overview", &here, &[]).await,
        200
    );
    assert_eq!(
        with_host(
            &svc,
            get.clone(),
            "/overview",
            &format!("localhost:{port}"),
            &[]
        )
        .await,
        200
    );
    assert_eq!(
        with_host(
            &svc,
            get.clone(),
            "/overview",
            &format!("admin.test:{port}"),
            &[]
        )
        .await,
        200,
        "admin.allowed_hosts"
    );
    // DNS rebinding: evil.example now resolves to 127.0.0.1, the browser says so in Host.
    assert_eq!(
        with_host(
            &svc,
            get.clone(),
            "/overview",
            &format!("evil.example:{port}"),
            &[]
        )
        .await,
        403
    );
    assert_eq!(
        with_host(&svc, get.clone(), "/sources", "127.0.0.1.evil.example", &[]).await,
        403
    );
    // CSRF: a cross-site text/plain form POST used to disable a source.
    let disable = "/sources/recoco-test/disable";
    for headers in [
        vec![
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ],
        vec![("origin", "null")],
        vec![("referer", "http://evil.example/page.html")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", "http://localhost:1")],
    ] {
        assert_eq!(
            with_host(&svc, post.clone(), disable, &here, &headers).await,
            403,
            "{headers:?}"
        );
    }
    assert_eq!(db_state(&svc).await.0, 1, "the source is still enabled");
    // X-Forwarded-For never decides (trust_forwarded_for is on here): a loopback
    // peer claiming to be remote is still a loopback peer.
    assert_eq!(
        with_host(
            &svc,
            get.clone(),
            "/overview",
            &here,
            &[("x-forwarded-for", "203.0.113.9")]
        )
        .await,
        200
    );
    // The service's own page (same origin), or a client without browser headers, may.
    let origin = format!("http://{here}");
    assert_eq!(
        with_host(
            &svc,
            post.clone(),
            disable,
            &here,
            &[("origin", &origin), ("sec-fetch-site", "same-origin")]
        )
        .await,
        200
    );
    assert_eq!(
        with_host(
            &svc,
            post.clone(),
            "/sources/recoco-test/enable",
            &here,
            &[]
        )
        .await,
        200
    );
    // Once a key exists the open door closes, without a restart.
    let key = keys::create(&svc.pool, "first", Scope::Admin)
        .await
        .unwrap();
    assert_eq!(
        with_host(&svc, get.clone(), "/overview", &here, &[]).await,
        401
    );
    let bearer = format!("Bearer {key}");
    assert_eq!(
        with_host(
            &svc,
            get.clone(),
            "/overview",
            &here,
            &[("authorization", &bearer)]
        )
        .await,
        200
    );
    svc.stop().await;
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_no_inline_script() {
    let svc = TestService::start(
        &keyed_setup("admin_token = \"bootstrap-token-123456\""),
        &[],
    )
    .await;
    let csp = recoco_sync::admin::CONTENT_SECURITY_POLICY;
    assert!(
        csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
            && csp.contains("frame-ancestors 'none'")
    );
    for (path, kind) in [
        ("/admin", "text/html"),
        ("/admin/page.js", "text/javascript"),
        ("/admin/page.css", "text/css"),
        ("/admin/api/overview", "application/json"), // a 401 carries them too
        // The API's document and its page hold no data: served without a key.
        ("/admin/api/openapi.json", "application/json"),
        ("/admin/api/docs", "text/html"),
        ("/admin/docs.js", "text/javascript"),
        ("/admin/docs.css", "text/css"),
    ] {
        let response = svc
            .client
            .get(format!("{}{path}", svc.url))
            .send()
            .await
            .unwrap();
        let h = response.headers();
        if path != "/admin/api/overview" {
            assert_eq!(response.status(), 200, "{path} without a key");
        }
        assert_eq!(h["content-security-policy"], csp, "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
    }
    let page = svc
        .client
        .get(format!("{}/admin", svc.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<script src=\"/admin/page.js\""));
    assert!(
        !page.contains("<script>") && !page.contains("<style>") && !page.contains("onclick="),
        "inline code or style in the page"
    );
    let script = svc
        .client
        .get(format!("{}/admin/page.js", svc.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !script.contains("localStorage") && !script.contains("innerHTML"),
        "the key stays out of storage; data never becomes markup"
    );
    for (path, tag) in [
        ("/admin/api/docs", "<script src=\"/admin/docs.js\""),
        ("/admin/docs.js", ""),
    ] {
        let text = svc
            .client
            .get(format!("{}{path}", svc.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains(tag), "{path}");
        assert!(
            !text.contains("<script>") && !text.contains("<style>") && !text.contains("innerHTML"),
            "{path}: inline code, or markup built from data"
        );
    }
    svc.stop().await;
}
