//! The OpenAI and Anthropic adapters against the fake provider over real HTTP on 127.0.0.1:
//! streaming, tool calls, usage, request mapping, and every failure as a `ProviderError`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use perch_kernel::credentials::{Credential, Secret};
use perch_kernel::model::{
    ChatMessage, ModelRequest, StopReason, StreamEvent, ToolCall, ToolSpec, Usage,
};
use perch_kernel::provider::{
    AnthropicConfig, AnthropicProvider, ModelProvider, OpenAiConfig, OpenAiProvider, ProviderError,
    RetryPolicy, RetryingProvider,
};
use perch_kernel::testing::{FakeProvider, Reply, Script, Wire};
use serde_json::json;

const KEY: &str = "sk-test-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    OpenAi,
    Anthropic,
}

const BOTH: [Kind; 2] = [Kind::OpenAi, Kind::Anthropic];

fn provider_with(
    kind: Kind,
    fake: &FakeProvider,
    credential: Credential,
    stall: Duration,
) -> Arc<dyn ModelProvider> {
    match kind {
        Kind::OpenAi => Arc::new(
            OpenAiProvider::new(OpenAiConfig {
                base_url: Some(fake.openai_base_url()),
                credential,
                stall_timeout: stall,
                ..Default::default()
            })
            .unwrap(),
        ),
        Kind::Anthropic => Arc::new(
            AnthropicProvider::new(AnthropicConfig {
                base_url: Some(fake.anthropic_base_url()),
                credential,
                stall_timeout: stall,
                ..Default::default()
            })
            .unwrap(),
        ),
    }
}

fn provider(kind: Kind, fake: &FakeProvider) -> Arc<dyn ModelProvider> {
    provider_with(
        kind,
        fake,
        Credential::ApiKey(Secret::new(KEY)),
        Duration::from_secs(10),
    )
}

fn hello() -> ModelRequest {
    ModelRequest {
        model: "test-model".into(),
        system: None,
        messages: vec![ChatMessage::User {
            text: "hello".into(),
        }],
        tools: Vec::new(),
        max_tokens: None,
    }
}

/// Runs one call to its end, returning the events and the error that ended it, and checks
/// that nothing follows an error and that no error ever carries the key.
async fn run(
    p: &dyn ModelProvider,
    request: ModelRequest,
) -> (Vec<StreamEvent>, Option<ProviderError>) {
    let collect = async {
        let mut stream = p.stream(request);
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(e) => events.push(e),
                Err(e) => {
                    assert!(stream.next().await.is_none(), "items after an error");
                    let shown = format!("{e} {e:?}");
                    assert!(
                        !shown.contains(KEY),
                        "the key leaked into an error: {shown}"
                    );
                    return (events, Some(e));
                }
            }
        }
        (events, None)
    };
    tokio::time::timeout(Duration::from_secs(20), collect)
        .await
        .expect("the call did not end")
}

fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn calls_of(events: &[StreamEvent]) -> Vec<ToolCall> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn text_streams_in_order_with_usage_and_finish() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(
            Script::new()
                .text("Hel")
                .text("lo, ")
                .text("world")
                .usage(12, 3),
        );
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(err, None, "{kind:?}");
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta("Hel".into()),
                StreamEvent::TextDelta("lo, ".into()),
                StreamEvent::TextDelta("world".into()),
                StreamEvent::Usage(Usage {
                    input_tokens: 12,
                    output_tokens: 3
                }),
                StreamEvent::Finished(StopReason::EndTurn),
            ],
            "{kind:?}"
        );
        let req = fake.last_request().unwrap();
        assert_eq!(req.body["stream"], true);
        match kind {
            Kind::OpenAi => {
                assert_eq!(req.wire, Wire::OpenAi);
                assert_eq!(req.path, "/v1/chat/completions");
                assert_eq!(req.bearer(), Some(KEY));
                assert!(req.api_key.is_none());
                assert_eq!(req.body["stream_options"]["include_usage"], true);
            }
            Kind::Anthropic => {
                assert_eq!(req.wire, Wire::Anthropic);
                assert_eq!(req.path, "/v1/messages");
                assert_eq!(req.api_key.as_ref().map(Secret::expose), Some(KEY));
                assert!(req.authorization.is_none());
                assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(req.header("anthropic-beta"), None);
                assert_eq!(req.body["max_tokens"], 4096);
            }
        }
        // A record printed in a failing assertion never shows the key.
        assert!(!format!("{req:?}").contains(KEY));
    }
}

#[tokio::test]
async fn a_tool_call_is_assembled_from_streamed_fragments() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(
            Script::new()
                .tool_call(
                    "call_1",
                    "location.get",
                    [r#"{"no"#, r#"de": "ph"#, r#"one"}"#],
                )
                .usage(40, 9),
        );
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(err, None, "{kind:?}");
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "location.get".into(),
                    arguments: r#"{"node": "phone"}"#.into(),
                }),
                StreamEvent::Usage(Usage {
                    input_tokens: 40,
                    output_tokens: 9
                }),
                StreamEvent::Finished(StopReason::ToolUse),
            ],
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn text_then_two_tool_calls_in_one_turn() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(
            Script::new()
                .text("Let me check ")
                .text("both.")
                .tool_call("call_a", "device.status", ["{", r#""node":"mac"}"#])
                .tool_call("call_b", "location.get", Vec::<String>::new()),
        );
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(err, None, "{kind:?}");
        assert_eq!(text_of(&events), "Let me check both.");
        let calls = calls_of(&events);
        assert_eq!(calls.len(), 2, "{kind:?}");
        assert_eq!(
            (
                calls[0].id.as_str(),
                calls[0].name.as_str(),
                calls[0].arguments.as_str()
            ),
            ("call_a", "device.status", r#"{"node":"mac"}"#)
        );
        assert_eq!(calls[1].id, "call_b");
        assert_eq!(calls[1].name, "location.get");
        // No argument text at all is `{}` from both adapters.
        assert_eq!(calls[1].arguments, "{}", "{kind:?}");
        // Text first, then the calls, then the finish; no usage was scripted.
        assert!(matches!(events[0], StreamEvent::TextDelta(_)));
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finished(StopReason::ToolUse))
        );
        assert!(!events.iter().any(|e| matches!(e, StreamEvent::Usage(_))));
    }
}

#[tokio::test]
async fn invalid_json_arguments_pass_through_raw() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Script::new().tool_call("c1", "system.notify", [r#"{"title": "#, "oops"]));
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(err, None, "{kind:?}");
        assert_eq!(
            calls_of(&events)[0].arguments,
            r#"{"title": oops"#,
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn events_and_characters_split_across_reads_reassemble() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(
            Script::new()
                .text("héllo wörld ✓ ")
                .text("日本")
                .tool_call("c", "t", [r#"{"k":"#, r#""ü"}"#])
                .usage(1, 2)
                .split_every(5)
                .delay(Duration::from_millis(1)),
        );
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(err, None, "{kind:?}");
        assert_eq!(text_of(&events), "héllo wörld ✓ 日本");
        assert_eq!(calls_of(&events)[0].arguments, r#"{"k":"ü"}"#);
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finished(StopReason::ToolUse))
        );
    }
}

#[tokio::test]
async fn max_tokens_stop_is_reported() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Script::new().text("trunc").stop(StopReason::MaxTokens));
        let (events, _) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finished(StopReason::MaxTokens)),
            "{kind:?}"
        );
    }
}

fn conversation() -> ModelRequest {
    ModelRequest {
        model: "test-model".into(),
        system: Some("You are Perch.".into()),
        messages: vec![
            ChatMessage::User {
                text: "Where am I and is my mac charged?".into(),
            },
            ChatMessage::Assistant {
                text: "Checking.".into(),
                tool_calls: vec![
                    ToolCall {
                        id: "call_1".into(),
                        name: "location.get".into(),
                        arguments: r#"{"node":"phone"}"#.into(),
                    },
                    ToolCall {
                        id: "call_2".into(),
                        name: "device.status".into(),
                        arguments: r#"{"node":"mac"}"#.into(),
                    },
                ],
            },
            ChatMessage::Tool {
                call_id: "call_1".into(),
                name: "location.get".into(),
                content: r#"{"city":"Lisbon"}"#.into(),
                is_error: false,
            },
            ChatMessage::Tool {
                call_id: "call_2".into(),
                name: "device.status".into(),
                content: "node offline".into(),
                is_error: true,
            },
        ],
        tools: vec![ToolSpec {
            name: "location.get".into(),
            description: "Where a device is.".into(),
            parameters: json!({"type": "object", "properties": {"node": {"type": "string"}}}),
        }],
        max_tokens: Some(256),
    }
}

#[tokio::test]
async fn openai_request_mapping() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Script::new().text("You are in Lisbon."));
    let (_, err) = run(&*provider(Kind::OpenAi, &fake), conversation()).await;
    assert_eq!(err, None);
    let body = fake.last_request().unwrap().body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(
        body["tools"],
        json!([{
            "type": "function",
            "function": {
                "name": "location.get",
                "description": "Where a device is.",
                "parameters": {"type": "object", "properties": {"node": {"type": "string"}}},
            },
        }])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are Perch."},
            {"role": "user", "content": "Where am I and is my mac charged?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "location.get", "arguments": "{\"node\":\"phone\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "device.status", "arguments": "{\"node\":\"mac\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"city\":\"Lisbon\"}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "error: node offline"},
        ])
    );
}

#[tokio::test]
async fn anthropic_request_mapping() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Script::new().text("You are in Lisbon."));
    let (_, err) = run(&*provider(Kind::Anthropic, &fake), conversation()).await;
    assert_eq!(err, None);
    let body = fake.last_request().unwrap().body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["system"], "You are Perch.");
    assert_eq!(
        body["tools"],
        json!([{
            "name": "location.get",
            "description": "Where a device is.",
            "input_schema": {"type": "object", "properties": {"node": {"type": "string"}}},
        }])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "Where am I and is my mac charged?"},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "location.get",
                 "input": {"node": "phone"}},
                {"type": "tool_use", "id": "call_2", "name": "device.status",
                 "input": {"node": "mac"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1",
                 "content": "{\"city\":\"Lisbon\"}", "is_error": false},
                {"type": "tool_result", "tool_use_id": "call_2",
                 "content": "node offline", "is_error": true},
            ]},
        ])
    );
}

#[tokio::test]
async fn http_500_carries_the_providers_message() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::status(
            500,
            r#"{"error":{"type":"api_error","message":"upstream exploded"}}"#,
        ));
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert!(events.is_empty());
        match err {
            Some(ProviderError::Http {
                status: 500,
                message,
                ..
            }) => assert_eq!(message, "api_error: upstream exploded"),
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_error_body_that_echoes_the_key_is_redacted() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::status(
            400,
            format!(r#"{{"error":{{"message":"bad request from key {KEY}"}}}}"#),
        ));
        let (_, err) = run(&*provider(kind, &fake), hello()).await;
        match err {
            Some(ProviderError::Http {
                status: 400,
                message,
                ..
            }) => assert_eq!(message, "bad request from key [redacted]"),
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn non_json_error_bodies_and_empty_ones() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Reply::status(502, "<html>Bad Gateway</html>"));
    fake.push(Reply::status(503, ""));
    let p = provider(Kind::OpenAi, &fake);
    match run(&*p, hello()).await.1 {
        Some(ProviderError::Http {
            status: 502,
            message,
            ..
        }) => assert_eq!(message, "<html>Bad Gateway</html>"),
        other => panic!("{other:?}"),
    }
    match run(&*p, hello()).await.1 {
        Some(ProviderError::Http {
            status: 503,
            message,
            ..
        }) => assert_eq!(message, "Service Unavailable"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_401_and_403() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::status(
            401,
            format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#),
        ));
        fake.push(Reply::status(403, r#"{"error":{"message":"forbidden"}}"#));
        let p = provider(kind, &fake);
        for status in [401, 403] {
            let (_, err) = run(&*p, hello()).await;
            let err = err.expect("an error");
            assert_eq!(
                err,
                ProviderError::Unauthorized {
                    provider: p.name().into(),
                    status
                },
                "{kind:?}"
            );
            assert!(err.to_string().contains("perch auth status"));
            assert!(!err.is_transient());
        }
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::rate_limited("7"));
        fake.push(Reply::rate_limited("20").with_header("retry-after-ms", "1500"));
        fake.push(Reply::status(429, "{}"));
        let p = provider(kind, &fake);
        for expected in [Some(7000), Some(1500), None] {
            let (_, err) = run(&*p, hello()).await;
            assert_eq!(
                err,
                Some(ProviderError::RateLimited {
                    provider: p.name().into(),
                    retry_after_ms: expected
                }),
                "{kind:?}"
            );
        }
    }
}

#[tokio::test]
async fn malformed_json_in_the_stream() {
    let cases = [
        (Kind::OpenAi, "data: {\"choices\": [\n\n".to_owned()),
        (
            Kind::Anthropic,
            "event: message_start\ndata: {not json}\n\n".to_owned(),
        ),
    ];
    for (kind, body) in cases {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::raw(body));
        let (_, err) = run(&*provider(kind, &fake), hello()).await;
        match err {
            Some(ProviderError::MalformedStream { detail, .. }) => {
                assert!(detail.contains("not valid JSON"), "{detail}")
            }
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_utf8_in_the_stream() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::raw(b"data: \xff\xfe\n\n".to_vec()));
        let (_, err) = run(&*provider(kind, &fake), hello()).await;
        assert!(
            matches!(err, Some(ProviderError::MalformedStream { .. })),
            "{kind:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_non_event_stream_answer_is_malformed() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Reply::status(200, r#"{"id":"x","choices":[]}"#));
    let (_, err) = run(&*provider(Kind::OpenAi, &fake), hello()).await;
    match err {
        Some(ProviderError::MalformedStream { detail, .. }) => {
            assert!(detail.contains("expected an event stream"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn errors_reported_inside_the_stream() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Reply::raw(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n\
         event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    ));
    let (_, err) = run(&*provider(Kind::Anthropic, &fake), hello()).await;
    match err {
        Some(
            ref e @ ProviderError::Http {
                status: 529,
                ref message,
                ..
            },
        ) => {
            assert_eq!(message, "overloaded_error: Overloaded");
            assert!(e.is_transient());
        }
        other => panic!("{other:?}"),
    }

    fake.push(Reply::raw(
        "data: {\"error\":{\"message\":\"model crashed\",\"type\":\"server_error\"}}\n\n",
    ));
    let (_, err) = run(&*provider(Kind::OpenAi, &fake), hello()).await;
    match err {
        Some(ProviderError::Http {
            status: 500,
            message,
            ..
        }) => assert_eq!(message, "server_error: model crashed"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stall_mid_stream_fails_after_the_stall_timeout() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Script::new().text("Thinking").stall());
        let p = provider_with(
            kind,
            &fake,
            Credential::ApiKey(Secret::new(KEY)),
            Duration::from_millis(300),
        );
        let started = Instant::now();
        let (events, err) = run(&*p, hello()).await;
        assert_eq!(text_of(&events), "Thinking", "{kind:?}");
        assert_eq!(
            err,
            Some(ProviderError::Stalled {
                provider: p.name().into(),
                after_ms: 300
            })
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn a_server_that_never_answers_stalls() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::Hang);
        let p = provider_with(
            kind,
            &fake,
            Credential::ApiKey(Secret::new(KEY)),
            Duration::from_millis(200),
        );
        let (events, err) = run(&*p, hello()).await;
        assert!(events.is_empty());
        assert!(
            matches!(err, Some(ProviderError::Stalled { after_ms: 200, .. })),
            "{kind:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_a_transport_error() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Script::new().text("Half an ans").cut());
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(text_of(&events), "Half an ans", "{kind:?}");
        assert!(
            !events.iter().any(|e| matches!(e, StreamEvent::Finished(_))),
            "{kind:?}"
        );
        assert!(
            matches!(err, Some(ProviderError::Transport { .. })),
            "{kind:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_stream_that_ends_before_the_finish_is_malformed() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(
            Script::new()
                .text("Half")
                .tool_call("c", "t", ["{}"])
                .end_without_finish(),
        );
        let (events, err) = run(&*provider(kind, &fake), hello()).await;
        assert_eq!(text_of(&events), "Half");
        match err {
            Some(ProviderError::MalformedStream { detail, .. }) => {
                assert!(detail.contains("ended before"), "{detail}")
            }
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = OpenAiProvider::new(OpenAiConfig {
        name: "ollama".into(),
        base_url: Some(format!("http://{addr}/v1")),
        ..Default::default()
    })
    .unwrap();
    let (_, err) = run(&p, hello()).await;
    match err {
        Some(ref e @ ProviderError::Transport { ref provider, .. }) => {
            assert_eq!(provider, "ollama");
            assert!(e.to_string().starts_with("cannot reach ollama"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn credentials_are_sent_the_way_each_provider_wants() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Script::new().text("a"));
    fake.push(Script::new().text("b"));
    fake.push(Script::new().text("c"));
    let bearer = || Credential::Bearer(Secret::new("oauth-token-xyz"));
    let anthropic_oauth = provider_with(Kind::Anthropic, &fake, bearer(), Duration::from_secs(5));
    assert_eq!(run(&*anthropic_oauth, hello()).await.1, None);
    let req = fake.last_request().unwrap();
    assert_eq!(req.bearer(), Some("oauth-token-xyz"));
    assert!(req.api_key.is_none());
    assert_eq!(req.header("anthropic-beta"), Some("oauth-2025-04-20"));

    let openai_token = provider_with(Kind::OpenAi, &fake, bearer(), Duration::from_secs(5));
    assert_eq!(run(&*openai_token, hello()).await.1, None);
    assert_eq!(
        fake.last_request().unwrap().bearer(),
        Some("oauth-token-xyz")
    );

    // A local server (Ollama) needs no key: no authorization header at all.
    let local = provider_with(
        Kind::OpenAi,
        &fake,
        Credential::None,
        Duration::from_secs(5),
    );
    assert_eq!(run(&*local, hello()).await.1, None);
    let req = fake.last_request().unwrap();
    assert!(req.authorization.is_none() && req.api_key.is_none());

    // Debug of a provider shows neither key nor token.
    let p = OpenAiProvider::new(OpenAiConfig {
        credential: Credential::ApiKey(Secret::new(KEY)),
        ..Default::default()
    })
    .unwrap();
    assert!(!format!("{p:?}").contains(KEY));
}

#[tokio::test]
async fn bad_configuration_is_refused_up_front() {
    assert!(
        OpenAiProvider::new(OpenAiConfig {
            base_url: Some("localhost:11434".into()),
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        AnthropicProvider::new(AnthropicConfig {
            credential: Credential::ApiKey(Secret::new("line\nbreak")),
            ..Default::default()
        })
        .is_err()
    );
}

#[tokio::test]
async fn an_empty_queue_answers_500() {
    let fake = FakeProvider::start().await.unwrap();
    let (_, err) = run(&*provider(Kind::OpenAi, &fake), hello()).await;
    assert!(
        matches!(err, Some(ProviderError::Http { status: 500, ref message, .. }) if message.contains("no scripted reply")),
        "{err:?}"
    );
}

#[tokio::test]
async fn retrying_waits_out_a_rate_limit_then_succeeds() {
    for kind in BOTH {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(Reply::rate_limited("1").with_header("retry-after-ms", "150"));
        fake.push(Reply::status(503, r#"{"error":{"message":"busy"}}"#));
        fake.push(Script::new().text("ok"));
        let p = RetryingProvider::new(
            provider(kind, &fake),
            RetryPolicy {
                max_retries: 2,
                max_wait: Duration::from_secs(5),
                backoff: Duration::from_millis(50),
            },
        );
        let started = Instant::now();
        let (events, err) = run(&p, hello()).await;
        assert_eq!(err, None, "{kind:?}");
        assert_eq!(text_of(&events), "ok");
        assert_eq!(fake.requests().len(), 3);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}

#[tokio::test]
async fn retrying_gives_up_on_long_waits_and_permanent_errors() {
    let fake = FakeProvider::start().await.unwrap();
    let p = RetryingProvider::new(
        provider(Kind::OpenAi, &fake),
        RetryPolicy {
            max_retries: 3,
            max_wait: Duration::from_secs(2),
            backoff: Duration::from_millis(10),
        },
    );
    // retry-after beyond max_wait: fail at once, with the wait for the caller to show.
    fake.push(Reply::rate_limited("3600"));
    let (_, err) = run(&p, hello()).await;
    assert_eq!(
        err.as_ref().and_then(ProviderError::retry_after),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(fake.requests().len(), 1);
    // Credentials never get better by retrying.
    fake.push(Reply::status(401, "{}"));
    let (_, err) = run(&p, hello()).await;
    assert!(matches!(err, Some(ProviderError::Unauthorized { .. })));
    assert_eq!(fake.requests().len(), 2);
    // Nothing is retried once part of the answer was yielded.
    fake.push(Script::new().text("partial").cut());
    let (events, err) = run(&p, hello()).await;
    assert_eq!(text_of(&events), "partial");
    assert!(matches!(err, Some(ProviderError::Transport { .. })));
    assert_eq!(fake.requests().len(), 3);
}
