//! `plugin test`'s kit run against real components: test-echo (every import
//! of 0.2.0) and the 0.1.0 test component. A scenario that matches what the
//! connector does passes; each kind of difference (request, header, body,
//! outcome, message, state, scheduled task, a request not sent, a host the
//! allow-list refuses) fails its step with a problem naming it.

use std::path::Path;

use recoco_sync::config::RuntimeConfig;
use recoco_sync::testkit::{Kit, ScenarioReport};
use recoco_sync_tests::components;

async fn run(scenario: &str, component: &Path) -> ScenarioReport {
    run_with(scenario, component, &[]).await
}

/// [`run`], with more files (name, content) beside the scenario.
async fn run_with(scenario: &str, component: &Path, files: &[(&str, &str)]) -> ScenarioReport {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, scenario).unwrap();
    std::fs::write(
        dir.path().join("event.json"),
        include_str!("../../../shared/fixtures/webhook-project-update.json"),
    )
    .unwrap();
    let kit = Kit::new(&RuntimeConfig::default()).unwrap();
    kit.run(&path, Some(component)).await.unwrap()
}

const ECHO: &str = r#"
[connection]
name = "crm"
config = { url = "https://echo.example.org/in", source_path = "/projects/1312/", schedule = { name = "echo", delay_ms = 60000, dedup_key = "k", payload = { n = 1 } } }

[state]
"echo:count" = "41"

[[steps]]
name = "every import"
event = "event.json"
summary = '"invocation":"handle-event"'
[[steps.http]]
method = "POST"
url = "https://echo.example.org/in"
headers = { "x-test-echo" = "1", "content-type" = "*" }
json = { connector = "test-echo", topic = "projects.Project/update", event_id = "evt_test_1" }
status = 202
response = { ok = true }
[[steps.source_api]]
method = "GET"
path = "/projects/1312/"
response = { id = 1312 }
[steps.state]
"echo:count" = 42
"echo:last" = "evt_test_1"
[[steps.scheduled]]
name = "echo"
dedup_key = "k"
payload = { n = 1 }

[[steps]]
name = "state carries over; a task"
task = "echo"
payload = { x = 1 }
[[steps.http]]
method = "POST"
url = "https://echo.example.org/in"
json = { task = "echo", payload = { x = 1 } }
[[steps.source_api]]
method = "GET"
path = "/projects/1312/"
[steps.state]
"echo:count" = 43
"#;

#[tokio::test]
async fn a_matching_scenario_passes_on_every_import() {
    let report = run(ECHO, &components::echo()).await;
    assert_eq!(report.wit_version, "0.2.0");
    for step in &report.steps {
        assert!(step.passed, "{step:?}");
    }
    assert_eq!(report.steps.len(), 2);
    // The log lines the connector wrote are kept with the step.
    assert!(
        report.steps[0]
            .log
            .iter()
            .any(|l| l == "info: test-echo: info (handle-event evt_test_1)"),
        "{:?}",
        report.steps[0].log
    );
}

#[tokio::test]
async fn each_difference_fails_its_step_with_a_problem_naming_it() {
    let broken = ECHO
        .replace(r#""x-test-echo" = "1""#, r#""x-test-echo" = "2", "x-missing" = "*""#)
        .replace(r#"connector = "test-echo""#, r#"connector = "other""#)
        .replace(r#""echo:count" = 42"#, r#""echo:count" = 7"#)
        .replace(r#"summary = '"invocation":"handle-event"'"#, r#"summary = "nope""#)
        .replace("name = \"echo\"\ndedup_key", "name = \"other\"\ndedup_key")
        .replace(
            "[[steps.source_api]]\nmethod = \"GET\"\npath = \"/projects/1312/\"\n[steps.state]\n\"echo:count\" = 43",
            "[[steps.source_api]]\nmethod = \"GET\"\npath = \"/projects/1312/\"\n[[steps.source_api]]\nmethod = \"GET\"\npath = \"/never/\"\n[steps.state]\n\"echo:count\" = 43",
        );
    let report = run(&broken, &components::echo()).await;
    let first = &report.steps[0];
    assert!(!first.passed);
    let problems = first.problems.join("\n");
    for expected in [
        "header x-test-echo is \"1\", expected \"2\"",
        "header x-missing is missing",
        "does not contain {\"connector\":\"other\"",
        "state \"echo:count\" is \"42\", expected 7",
        "does not contain \"nope\"",
        "scheduled [\"echo\"], expected [\"other\"]",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} not in:\n{problems}"
        );
    }
    let second = &report.steps[1];
    assert_eq!(
        second.problems,
        ["expected source_api request GET /never/ was not sent"]
    );
}

#[tokio::test]
async fn requests_out_of_script_or_off_the_allow_list_fail() {
    // The connector sends a request the step does not list; and one to a
    // host the connection may not reach (the host would refuse it too).
    let unlisted = "[connection]\nconfig = { url = \"https://echo.example.org/in\" }\n\
                    [[steps]]\nname = \"unlisted\"\nevent = \"event.json\"\n";
    let report = run(unlisted, &components::echo()).await;
    assert_eq!(
        report.steps[0].problems,
        ["unexpected http request POST https://echo.example.org/in (the step lists no more)"]
    );
    let fenced = "[connection]\nconfig = { url = \"https://echo.example.org/in\" }\n\
                  allowed_hosts = [\"other.example.org\"]\n\
                  [[steps]]\nevent = \"event.json\"\n";
    let report = run(fenced, &components::echo()).await;
    assert_eq!(report.steps[0].name, "step 1");
    assert!(
        report.steps[0].problems[0]
            .contains("echo.example.org is not in the connection's allowed hosts"),
        "{:?}",
        report.steps[0].problems
    );
}

#[tokio::test]
async fn outcomes_retry_and_fail_are_told_apart() {
    let scenario = "[connection]\nconfig = { url = \"https://echo.example.org/in\", fail = \"retryable\" }\n\
                    [[steps]]\nevent = \"event.json\"\nexpect = \"retry\"\nsummary = \"asked to fail\"\n\
                    [[steps.http]]\nmethod = \"POST\"\nurl = \"https://echo.example.org/in\"\n\
                    [[steps]]\nevent = \"event.json\"\nexpect = \"fail\"\n\
                    [[steps.http]]\nmethod = \"POST\"\nurl = \"https://echo.example.org/in\"\n";
    let report = run(scenario, &components::echo()).await;
    assert!(report.steps[0].passed, "{:?}", report.steps[0]);
    assert_eq!(report.steps[1].outcome, "retry");
    assert_eq!(
        report.steps[1].problems,
        ["expected outcome fail, got retry: asked to fail"]
    );
}

#[tokio::test]
async fn a_config_the_schema_refuses_stops_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "[connection]\nconfig = { url = 5 }\n[[steps]]\ntask = \"echo\"\n",
    )
    .unwrap();
    let kit = Kit::new(&RuntimeConfig::default()).unwrap();
    let err = format!(
        "{:#}",
        kit.run(&path, Some(&components::echo())).await.unwrap_err()
    );
    assert!(
        err.contains("config does not match the schema of plugin test-echo: /url"),
        "{err}"
    );
}

#[tokio::test]
async fn a_0_1_0_component_runs_in_the_kit_too() {
    let scenario = "[connection]\nconfig = { url = \"https://old.example.org/x\" }\n\
                    [[steps]]\nevent = \"event.json\"\nsummary = \"v0.1 delivered 200\"\n\
                    [[steps.http]]\nmethod = \"POST\"\nurl = \"https://old.example.org/x\"\n\
                    headers = { \"x-state\" = \"evt_test_1\" }\n\
                    json = { topic = \"projects.Project/update\" }\n\
                    [steps.state]\nlast-event = \"evt_test_1\"\n\
                    [[steps.scheduled]]\nname = \"ping\"\n";
    let report = run(scenario, &components::wit_v0_1()).await;
    assert_eq!(report.wit_version, "0.1.0");
    assert!(report.steps[0].passed, "{:?}", report.steps[0]);
}

#[tokio::test]
async fn the_runtime_limits_of_the_configuration_apply() {
    // test-hog allocates without bound: the configured memory limit stops it,
    // and test-looper spins: the configured CPU deadline stops it.
    let runtime = RuntimeConfig {
        memory_limit: 24 * 1024 * 1024,
        deadline: std::time::Duration::from_millis(300),
        ..RuntimeConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "[[steps]]\nevent = { topic = \"projects.Project/update\", object = { id = 1 } }\nexpect = \"fail\"\n",
    )
    .unwrap();
    let kit = Kit::new(&runtime).unwrap();
    let hog = kit.run(&path, Some(&components::hog())).await.unwrap();
    assert!(hog.steps[0].passed, "{:?}", hog.steps[0]);
    assert!(
        hog.steps[0].message.starts_with("trapped"),
        "{:?}",
        hog.steps[0]
    );
    let started = std::time::Instant::now();
    let looper = kit.run(&path, Some(&components::looper())).await.unwrap();
    assert!(looper.steps[0].passed, "{:?}", looper.steps[0]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test]
async fn attempt_exact_bodies_and_text_answers() {
    // `attempt` reaches the connector's context; `body` is compared to the
    // letter (test-wit-v0-1 forwards the webhook body byte for byte).
    let body = r#"{"topic":"projects.Project/update","object":{"id":5},"object_type":"projects.Project","webhook_uuid":"u-1"}"#;
    let scenario = format!(
        "[connection]\nconfig = {{ url = \"https://old.example.org/x\" }}\n\
         [[steps]]\nevent = \"small.json\"\nattempt = 3\n\
         [[steps.http]]\nmethod = \"POST\"\nurl = \"https://old.example.org/x\"\n\
         headers = {{ \"x-attempt\" = \"3\" }}\nbody = '{body}'\n\
         [[steps]]\nevent = \"small.json\"\n\
         [[steps.http]]\nmethod = \"POST\"\nurl = \"https://old.example.org/x\"\nbody = '{{}}'\n"
    );
    let report = run_with(&scenario, &components::wit_v0_1(), &[("small.json", body)]).await;
    assert!(report.steps[0].passed, "{:?}", report.steps[0]);
    assert!(
        report.steps[1].problems[0].starts_with("POST https://old.example.org/x: body is "),
        "{:?}",
        report.steps[1].problems
    );
    // `response_body` is the text answer the connector reads back.
    let text = "[connection]\nconfig = { url = \"https://echo.example.org/in\" }\n\
                [[steps]]\nevent = \"event.json\"\nsummary = '\"body\":\"plain answer\"'\n\
                [[steps.http]]\nmethod = \"POST\"\nurl = \"https://echo.example.org/in\"\n\
                status = 201\nresponse_body = \"plain answer\"\n";
    let report = run(text, &components::echo()).await;
    assert!(report.steps[0].passed, "{:?}", report.steps[0]);
}

#[tokio::test]
async fn host_calls_the_host_refuses_are_refused_in_the_kit_too() {
    // A task 31 days ahead: the host's scheduler refuses it, so does the kit
    // (test-echo records the refusal in its summary and goes on).
    let scenario = "[connection]\nconfig = { url = \"https://echo.example.org/in\", schedule = { name = \"echo\", delay_ms = 2678400000 } }\n\
                    [[steps]]\nevent = \"event.json\"\nsummary = \"a task may be scheduled at most 30 days ahead\"\n\
                    [[steps.http]]\nmethod = \"POST\"\nurl = \"https://echo.example.org/in\"\n\
                    [[steps.scheduled]]\nname = \"echo\"\n";
    let report = run(scenario, &components::echo()).await;
    assert_eq!(
        report.steps[0].problems,
        ["scheduled [], expected [\"echo\"]"],
        "{:?}",
        report.steps[0]
    );
}
