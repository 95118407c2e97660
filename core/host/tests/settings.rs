//! `settings.get` and `settings.set` over the wire: what the file says beside what the host
//! runs with, changes written in place, and a structured refusal for each kind of bad input.

mod common;

use serde_json::json;

use common::*;

/// A perch.toml that matches what the test host runs with, so nothing needs a restart yet.
fn matching_file(host: &TestHost) -> String {
    let name = &host.gw.hub().config.name;
    format!(
        "# kept\n[gateway]\nname = \"{name}\"\nbind = \"{}\"\n",
        host.gw.addr()
    )
}

#[tokio::test]
async fn hello_ok_advertises_the_settings_methods() {
    let host = start_host("").await;
    let mut r = Raw::open(&host).await;
    let hello = r
        .request("connect", operator_connect_params(&host.token))
        .await
        .unwrap();
    let methods = hello["features"]["methods"].as_array().unwrap();
    for m in ["settings.get", "settings.set"] {
        assert!(methods.iter().any(|x| x == m), "{m} not advertised");
    }
    let events = hello["features"]["events"].as_array().unwrap();
    assert!(events.iter().any(|x| x == "agent.turn"));
}

#[tokio::test]
async fn get_shows_the_file_and_the_running_host() {
    let host = start_host("").await;
    std::fs::write(host.dir.path().join("perch.toml"), matching_file(&host)).unwrap();
    let mut op = operator(&host).await;
    let s = op.request("settings.get", json!({})).await.unwrap();
    assert_eq!(s["bind"], host.gw.addr().to_string());
    assert_eq!(s["running"]["bind"], host.gw.addr().to_string());
    assert_eq!(s["running"]["mdns"], "minimal");
    assert_eq!(s["restartRequired"], false);
    assert_eq!(
        s["models"],
        json!({"fast": null, "default": null, "smart": null})
    );
    assert_eq!(s["desktop"], json!({"location": null}));
    assert!(
        s["configPath"].as_str().unwrap().ends_with("perch.toml"),
        "{s}"
    );
}

#[tokio::test]
async fn set_writes_the_file_in_place_and_asks_for_a_restart() {
    let host = start_host("").await;
    std::fs::write(host.dir.path().join("perch.toml"), matching_file(&host)).unwrap();
    let mut op = operator(&host).await;
    let mut other = operator(&host).await;
    let running_name = host.gw.hub().config.name.clone();
    let s = op
        .request(
            "settings.set",
            json!({"name": "Studio", "mdns": "off",
                   "models": {"default": {"provider": "openai", "model": "gpt-test"}},
                   "desktop": {"location": {"lat": 48.2, "lon": 16.37, "accuracyM": 50}}}),
        )
        .await
        .unwrap();
    assert_eq!(s["name"], "Studio");
    assert_eq!(s["mdns"], "off");
    assert_eq!(s["running"]["name"], running_name.as_str());
    assert_eq!(s["restartRequired"], true);
    assert_eq!(s["models"]["default"]["model"], "gpt-test");
    assert_eq!(
        s["desktop"]["location"],
        json!({"lat": 48.2, "lon": 16.37, "accuracyM": 50.0})
    );
    let text = std::fs::read_to_string(host.dir.path().join("perch.toml")).unwrap();
    assert!(text.starts_with("# kept\n[gateway]\n"), "{text}");
    assert!(text.contains("name = \"Studio\""), "{text}");
    // A later get agrees, and every other operator heard of the change.
    let again = op.request("settings.get", json!({})).await.unwrap();
    assert_eq!(again, s);
    assert_eq!(other.event("settings.changed").await, s);
}

#[tokio::test]
async fn each_kind_of_bad_input_gets_a_structured_refusal() {
    let host = start_host("").await;
    let path = host.dir.path().join("perch.toml");
    std::fs::write(&path, matching_file(&host)).unwrap();
    let mut op = operator(&host).await;
    let cases = [
        (json!({"bind": "not an address"}), "bind"),
        (json!({"mdns": "loud"}), "mdns"),
        (json!({"name": 7}), "name"),
        (json!({"colour": "blue"}), "colour"),
        (
            json!({"models": {"smart": {"provider": "openai", "model": "m", "apiKey": "sk-x"}}}),
            "models.smart.apiKey",
        ),
        (
            json!({"desktop": {"location": {"lat": 0, "lon": 200}}}),
            "desktop.location.lon",
        ),
        (json!([1, 2]), "params"),
    ];
    for (params, field) in cases {
        let err = op
            .request("settings.set", params.clone())
            .await
            .unwrap_err();
        assert_eq!(err["code"], "INVALID_REQUEST", "{params}: {err}");
        assert_eq!(err["details"]["field"], field, "{params}: {err}");
        assert!(!err.to_string().contains("sk-x"), "secret echoed: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        matching_file(&host),
        "a refused patch writes nothing"
    );
}

#[tokio::test]
async fn a_corrupt_file_is_refused_until_reset() {
    let host = start_host("").await;
    let path = host.dir.path().join("perch.toml");
    std::fs::write(&path, "[gateway]\nname = \"unterminated\n").unwrap();
    let mut op = operator(&host).await;
    let err = op.request("settings.get", json!({})).await.unwrap_err();
    assert_eq!(err["code"], "UNAVAILABLE");
    assert_eq!(err["details"]["reason"], "config-corrupt");
    assert_eq!(err["details"]["line"], 2);
    let err = op
        .request("settings.set", json!({"name": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err["details"]["reason"], "config-corrupt");
    let s = op
        .request(
            "settings.set",
            json!({"name": "Fixed", "resetCorrupt": true}),
        )
        .await
        .unwrap();
    assert_eq!(s["name"], "Fixed");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[gateway]\nname = \"Fixed\"\n"
    );
}

/// The host handle's in-process event stream sees what operators see.
#[tokio::test]
async fn the_host_handle_streams_operator_events() {
    let host = start_host("").await;
    let mut events = host.gw.events();
    let mut op = operator(&host).await;
    op.request("settings.set", json!({"name": "Studio"}))
        .await
        .unwrap();
    let ev = tokio::time::timeout(WAIT, async {
        loop {
            let e = events.recv().await.unwrap();
            if e.event == "settings.changed" {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ev.payload.unwrap()["name"], "Studio");
}
