//! The agent loop against the fake provider over real HTTP: text and tool turns in both wire
//! formats, and every kind of bad answer giving a clear error with a consistent transcript.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use perch_kernel::agent::{
    Agent, AgentConfig, ToolFailure, Toolbox, Transcript, TurnError, TurnRecord,
};
use perch_kernel::credentials::{Credential, Secret};
use perch_kernel::model::{ChatMessage, StopReason, ToolSpec};
use perch_kernel::provider::ModelProvider;
use perch_kernel::provider::anthropic::{AnthropicConfig, AnthropicProvider};
use perch_kernel::provider::openai::{OpenAiConfig, OpenAiProvider};
use perch_kernel::testing::{FakeProvider, Reply, Script};

#[derive(Default)]
struct MemTranscript {
    turns: Mutex<Vec<(String, String, Vec<TurnRecord>)>>,
}

impl Transcript for MemTranscript {
    fn history(
        &self,
        session: &str,
        _limit: u32,
    ) -> BoxFuture<'_, Result<Vec<ChatMessage>, String>> {
        let msgs: Vec<ChatMessage> = self
            .turns
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, _)| s == session)
            .flat_map(|(_, _, r)| r.clone())
            .filter_map(|r| match r {
                TurnRecord::Message { message, .. } => Some(message),
                TurnRecord::Error(_) => None,
            })
            .collect();
        Box::pin(async move { Ok(msgs) })
    }
    fn append(
        &self,
        session: &str,
        turn_id: &str,
        records: Vec<TurnRecord>,
    ) -> BoxFuture<'_, Result<(), String>> {
        self.turns
            .lock()
            .unwrap()
            .push((session.to_string(), turn_id.to_string(), records));
        Box::pin(async { Ok(()) })
    }
}

struct Tools;

impl Toolbox for Tools {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "location_get".into(),
            description: "Where the user's device is".into(),
            parameters: json!({"type": "object", "properties": {"node": {"type": "string"}}}),
        }]
    }
    fn call(
        &self,
        _call_id: &str,
        name: &str,
        _args: Value,
    ) -> Option<BoxFuture<'static, Result<Value, ToolFailure>>> {
        match name {
            "location_get" => Some(Box::pin(async { Ok(json!({"lat": 48.2, "lon": 16.37})) })),
            _ => None,
        }
    }
}

fn openai(fake: &FakeProvider) -> Arc<dyn ModelProvider> {
    Arc::new(
        OpenAiProvider::new(OpenAiConfig {
            base_url: Some(fake.openai_base_url()),
            credential: Credential::ApiKey(Secret::new("sk-test")),
            stall_timeout: Duration::from_millis(500),
            ..Default::default()
        })
        .unwrap(),
    )
}

fn agent(p: Arc<dyn ModelProvider>, t: Arc<MemTranscript>) -> Agent {
    Agent::new(
        p,
        t,
        AgentConfig {
            model: "test-model".into(),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn a_tool_turn_calls_the_tool_and_answers() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(
        Script::new()
            .tool_call("c1", "location_get", ["{\"no", "de\":\"phone\"}"])
            .usage(10, 3)
            .stop(StopReason::ToolUse),
    );
    fake.push(
        Script::new()
            .text("You are ")
            .text("in Vienna.")
            .usage(20, 5),
    );
    let t = Arc::new(MemTranscript::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let out = agent(openai(&fake), t.clone())
        .run_turn(
            "main",
            "t1",
            "where am I?",
            &["<device-context>x</device-context>".into()],
            &Tools,
            &tx,
        )
        .await
        .unwrap();
    assert_eq!(out.text, "You are in Vienna.");
    assert_eq!(out.tool_calls, 1);
    assert_eq!(out.usage.input_tokens, 30);
    // The second request carried the tool result; both carried the context block.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].raw_body.contains("device-context"));
    let last = &reqs[1].body["messages"];
    assert!(last.to_string().contains("16.37"), "{last}");
    // Events streamed in order.
    let mut kinds = vec![];
    while let Ok(e) = rx.try_recv() {
        kinds.push(format!("{e:?}"));
    }
    assert!(
        kinds[0].starts_with("ToolStarted") && kinds[1].starts_with("ToolFinished"),
        "{kinds:?}"
    );
    // One turn in the transcript: user, assistant (tool call), tool, assistant.
    let turns = t.turns.lock().unwrap();
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0].2.len(), 4);
}

#[tokio::test]
async fn bad_tool_calls_are_fed_back_not_fatal() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(
        Script::new()
            .tool_call("c1", "location_get", ["{not json"])
            .tool_call("c2", "teleport", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(Script::new().text("Sorry, I could not."));
    let t = Arc::new(MemTranscript::default());
    let (tx, _rx) = mpsc::unbounded_channel();
    let out = agent(openai(&fake), t.clone())
        .run_turn("main", "t1", "go", &[], &Tools, &tx)
        .await
        .unwrap();
    assert_eq!(out.text, "Sorry, I could not.");
    let second = fake.requests()[1].raw_body.clone();
    assert!(second.contains("INVALID_ARGUMENTS"), "{second}");
    assert!(second.contains("UNKNOWN_TOOL"), "{second}");
}

#[tokio::test]
async fn provider_failures_end_the_turn_cleanly_and_the_session_goes_on() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Reply::status(
        500,
        r#"{"error":{"message":"upstream exploded"}}"#,
    ));
    fake.push(Script::new().text("fine now"));
    let t = Arc::new(MemTranscript::default());
    let a = agent(openai(&fake), t.clone());
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = a
        .run_turn("main", "t1", "hello", &[], &Tools, &tx)
        .await
        .unwrap_err();
    assert!(matches!(err, TurnError::Provider(_)), "{err:?}");
    assert!(err.to_string().contains("upstream exploded"));
    {
        let turns = t.turns.lock().unwrap();
        assert!(
            matches!(turns[0].2.last(), Some(TurnRecord::Error(_))),
            "the failure is in the transcript"
        );
    }
    let out = a
        .run_turn("main", "t2", "again", &[], &Tools, &tx)
        .await
        .unwrap();
    assert_eq!(out.text, "fine now");
    // The retry's history holds the first user message but not the error row.
    let msgs = &fake.requests()[1].body["messages"];
    assert!(msgs.to_string().contains("hello"));
    assert!(!msgs.to_string().contains("upstream exploded"));
}

#[tokio::test]
async fn rate_limits_are_honoured_and_stalls_fail() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Reply::rate_limited("0"));
    fake.push(Script::new().text("after the wait"));
    fake.push(Script::new().stall());
    let t = Arc::new(MemTranscript::default());
    let a = agent(openai(&fake), t);
    let (tx, _rx) = mpsc::unbounded_channel();
    assert_eq!(
        a.run_turn("main", "t1", "hi", &[], &Tools, &tx)
            .await
            .unwrap()
            .text,
        "after the wait"
    );
    let err = a
        .run_turn("main", "t2", "hi", &[], &Tools, &tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stalled"), "{err}");
}

#[tokio::test]
async fn the_anthropic_wire_works_the_same() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(
        Script::new()
            .tool_call("tu_1", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(Script::new().text("Vienna."));
    let p: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig {
            base_url: Some(fake.anthropic_base_url()),
            credential: Credential::ApiKey(Secret::new("sk-ant")),
            ..Default::default()
        })
        .unwrap(),
    );
    let (tx, _rx) = mpsc::unbounded_channel();
    let out = agent(p, Arc::new(MemTranscript::default()))
        .run_turn("main", "t1", "where?", &[], &Tools, &tx)
        .await
        .unwrap();
    assert_eq!(out.text, "Vienna.");
    let second = &fake.requests()[1].body;
    assert!(
        second["messages"].to_string().contains("tool_result"),
        "{second}"
    );
}

#[tokio::test]
async fn an_empty_message_is_refused() {
    let fake = FakeProvider::start().await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = agent(openai(&fake), Arc::new(MemTranscript::default()))
        .run_turn("main", "t1", "   ", &[], &Tools, &tx)
        .await
        .unwrap_err();
    assert_eq!(err, TurnError::EmptyMessage);
    assert!(fake.requests().is_empty());
}

mod with_pipeline {
    use super::*;
    use perch_kernel::pipeline::{
        ContextBlock, Decision, DecisionHandler, HandlerError, Observer, Pipeline, Registration,
        Stage, StagePayload, Trust, TurnEvent as StageEvent,
    };

    struct Recorder(Arc<Mutex<Vec<&'static str>>>);
    impl Observer for Recorder {
        fn observe(&self, e: &StageEvent) -> BoxFuture<'_, Result<(), HandlerError>> {
            self.0.lock().unwrap().push(e.stage.as_str());
            Box::pin(async { Ok(()) })
        }
    }

    struct AddContext;
    impl DecisionHandler for AddContext {
        fn decide(&self, e: &StageEvent) -> BoxFuture<'_, Result<Decision, HandlerError>> {
            let d = match &*e.payload {
                StagePayload::Context(c) => {
                    Decision::Modify(StagePayload::Context(c.clone().with_block(ContextBlock {
                        source: "memory".into(),
                        label: "memory".into(),
                        trust: Trust::Trusted,
                        text: "The user prefers Celsius.".into(),
                    })))
                }
                _ => Decision::Continue,
            };
            Box::pin(async move { Ok(d) })
        }
    }

    struct BlockTools;
    impl DecisionHandler for BlockTools {
        fn decide(&self, _e: &StageEvent) -> BoxFuture<'_, Result<Decision, HandlerError>> {
            Box::pin(async {
                Ok(Decision::Cancel {
                    reason: "tools are paused".into(),
                })
            })
        }
    }

    #[tokio::test]
    async fn stages_run_in_order_handlers_add_context_and_block_tools() {
        let fake = FakeProvider::start().await.unwrap();
        fake.push(
            Script::new()
                .tool_call("c1", "location_get", ["{}"])
                .stop(StopReason::ToolUse),
        );
        fake.push(Script::new().text("I cannot look right now."));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pipeline = Arc::new(Pipeline::default());
        pipeline
            .register(Registration::observer(
                "rec",
                perch_kernel::pipeline::StageSet::ALL,
                Recorder(seen.clone()),
            ))
            .unwrap();
        pipeline
            .register(Registration::decision(
                "ctx",
                Stage::ContextAssembling,
                AddContext,
            ))
            .unwrap();
        pipeline
            .register(Registration::decision(
                "block",
                Stage::ToolCallBefore,
                BlockTools,
            ))
            .unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let out = agent(openai(&fake), Arc::new(MemTranscript::default()))
            .with_pipeline(pipeline)
            .run_turn("main", "t1", "where?", &[], &Tools, &tx)
            .await
            .unwrap();
        assert_eq!(out.text, "I cannot look right now.");
        let reqs = fake.requests();
        assert!(
            reqs[0].raw_body.contains("prefers Celsius"),
            "a handler's context block reached the prompt"
        );
        assert!(
            reqs[1].raw_body.contains("CANCELLED") && reqs[1].raw_body.contains("tools are paused")
        );
        // Observers run in their own tasks; give them a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stages = seen.lock().unwrap().clone();
        for s in [
            "ingress.received",
            "ingress.normalized",
            "context.assembling",
            "prompt.built",
            "model.request",
            "tool.call.before",
            "tool.call.after",
            "egress.preparing",
            "egress.sent",
        ] {
            assert!(stages.contains(&s), "{s} missing from {stages:?}");
        }
    }
}

/// Fails every call with its own code, and records the call ids it was given.
#[derive(Default)]
struct Refusing {
    ids: std::sync::Mutex<Vec<String>>,
}

impl Toolbox for Refusing {
    fn specs(&self) -> Vec<ToolSpec> {
        Tools.specs()
    }
    fn call(
        &self,
        call_id: &str,
        _name: &str,
        _args: Value,
    ) -> Option<BoxFuture<'static, Result<Value, ToolFailure>>> {
        self.ids.lock().unwrap().push(call_id.to_string());
        Some(Box::pin(async {
            Err(ToolFailure::new("COMMAND_NOT_ALLOWED", "not on this host"))
        }))
    }
}

#[tokio::test]
async fn a_tool_failure_reads_with_its_code_once_and_each_call_has_its_id() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(
        Script::new()
            .tool_call("c1", "location_get", ["{}"])
            .tool_call("c2", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(Script::new().text("I may not."));
    let t = Arc::new(MemTranscript::default());
    let (tx, _rx) = mpsc::unbounded_channel();
    let tools = Refusing::default();
    agent(openai(&fake), t.clone())
        .run_turn("main", "t1", "where?", &[], &tools, &tx)
        .await
        .unwrap();
    assert_eq!(*tools.ids.lock().unwrap(), vec!["c1", "c2"]);
    let turns = t.turns.lock().unwrap();
    let contents: Vec<String> = turns[0]
        .2
        .iter()
        .filter_map(|r| match r {
            TurnRecord::Message {
                message:
                    ChatMessage::Tool {
                        content, is_error, ..
                    },
                ..
            } => {
                assert!(is_error);
                Some(content.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        contents,
        vec![
            "COMMAND_NOT_ALLOWED: not on this host",
            "COMMAND_NOT_ALLOWED: not on this host"
        ]
    );
}
