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
