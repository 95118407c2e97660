//! The canonical event pipeline: stage order, the three modes, deadlines and diagnostics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;

use perch_kernel::model::{ChatMessage, ModelRequest};
use perch_kernel::pipeline::{
    ContextBlock, ContextPayload, Decision, DecisionHandler, DiagnosticKind, EgressPayload,
    HandlerError, HotPathHandler, IngressPayload, Mode, ModelCallPayload, Observer, PayloadKind,
    Pipeline, PipelineConfig, PipelineError, Registration, RegistrationError, Stage, StagePayload,
    StageSet, ToolCallPayload, ToolResultPayload, TranscriptPayload, Trust, TurnEvent,
};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// A payload of the right shape for each stage.
fn payload_for(stage: Stage) -> StagePayload {
    let request = ModelRequest {
        model: "m".into(),
        system: None,
        messages: vec![ChatMessage::User { text: "hi".into() }],
        tools: vec![],
        max_tokens: None,
    };
    match stage.payload_kind() {
        PayloadKind::Ingress => StagePayload::Ingress(IngressPayload {
            channel: "cli".into(),
            sender: None,
            text: "hi".into(),
        }),
        PayloadKind::Context => StagePayload::Context(ContextPayload::default()),
        PayloadKind::Prompt => StagePayload::Prompt(request),
        PayloadKind::ModelCall => StagePayload::ModelCall(ModelCallPayload {
            provider: "openai".into(),
            request,
        }),
        PayloadKind::ToolCall => StagePayload::ToolCall(ToolCallPayload {
            call_id: "c1".into(),
            tool: "location_get".into(),
            arguments: json!({}),
        }),
        PayloadKind::ToolResult => StagePayload::ToolResult(ToolResultPayload {
            call_id: "c1".into(),
            tool: "location_get".into(),
            output: json!({"lat": 1.0}),
            is_error: false,
        }),
        PayloadKind::Egress => StagePayload::Egress(EgressPayload {
            channel: "cli".into(),
            text: "hello".into(),
        }),
        PayloadKind::Transcript => StagePayload::Transcript(TranscriptPayload {
            message: ChatMessage::User { text: "hi".into() },
        }),
    }
}

/// Records `name:stage` for every event it sees.
struct Record(&'static str, Log);

impl Observer for Record {
    fn observe<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
        self.1
            .lock()
            .unwrap()
            .push(format!("{}:{}", self.0, event.stage));
        Box::pin(async { Ok(()) })
    }
}

impl DecisionHandler for Record {
    fn decide<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<Decision, HandlerError>> {
        self.1
            .lock()
            .unwrap()
            .push(format!("{}:{}", self.0, event.stage));
        Box::pin(async { Ok(Decision::Continue) })
    }
}

impl HotPathHandler for Record {
    fn handle(&self, event: &TurnEvent) -> Result<Decision, HandlerError> {
        self.1
            .lock()
            .unwrap()
            .push(format!("{}:{}", self.0, event.stage));
        Ok(Decision::Continue)
    }
}

/// A decision handler from a synchronous closure.
struct Decide<F>(F);

impl<F> DecisionHandler for Decide<F>
where
    F: Fn(&TurnEvent) -> Result<Decision, HandlerError> + Send + Sync + 'static,
{
    fn decide<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<Decision, HandlerError>> {
        let answer = (self.0)(event);
        Box::pin(async move { answer })
    }
}

impl<F> HotPathHandler for Decide<F>
where
    F: Fn(&TurnEvent) -> Result<Decision, HandlerError> + Send + Sync + 'static,
{
    fn handle(&self, event: &TurnEvent) -> Result<Decision, HandlerError> {
        (self.0)(event)
    }
}

/// Sleeps for a while, then continues (decision) or succeeds (observer).
struct Sleepy(Duration);

impl DecisionHandler for Sleepy {
    fn decide<'a>(&'a self, _: &'a TurnEvent) -> BoxFuture<'a, Result<Decision, HandlerError>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            Ok(Decision::Cancel {
                reason: "too late to count".into(),
            })
        })
    }
}

impl Observer for Sleepy {
    fn observe<'a>(&'a self, _: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            Ok(())
        })
    }
}

/// Never finishes.
struct Stuck;

impl Observer for Stuck {
    fn observe<'a>(&'a self, _: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(std::future::pending())
    }
}

/// Fails, or panics, in the future or before returning it.
enum Broken {
    Fails,
    PanicsInFuture,
    PanicsAtCall,
}

impl Observer for Broken {
    fn observe<'a>(&'a self, _: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
        match self {
            Broken::Fails => Box::pin(async { Err(HandlerError::new("disk full")) }),
            Broken::PanicsInFuture => Box::pin(async { panic!("observer bug") }),
            Broken::PanicsAtCall => panic!("observer bug at call"),
        }
    }
}

impl DecisionHandler for Broken {
    fn decide<'a>(&'a self, _: &'a TurnEvent) -> BoxFuture<'a, Result<Decision, HandlerError>> {
        match self {
            Broken::Fails => Box::pin(async { Err(HandlerError::new("policy store down")) }),
            Broken::PanicsInFuture => Box::pin(async { panic!("decision bug") }),
            Broken::PanicsAtCall => panic!("decision bug at call"),
        }
    }
}

async fn run_all_stages(pipeline: &Pipeline) -> perch_kernel::pipeline::TurnReport {
    let mut turn = pipeline.begin_turn("main", "t1");
    for stage in Stage::ALL {
        let outcome = turn.emit(stage, payload_for(stage)).await.unwrap();
        assert!(!outcome.is_cancelled());
    }
    turn.settle().await
}

#[test]
fn stages_are_in_canonical_order_with_stable_names() {
    let mut sorted = Stage::ALL;
    sorted.sort();
    assert_eq!(sorted, Stage::ALL);
    for (i, stage) in Stage::ALL.iter().enumerate() {
        assert_eq!(stage.index(), i);
        let json = serde_json::to_value(stage).unwrap();
        assert_eq!(json, json!(stage.as_str()));
    }
    let names: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "ingress.received",
            "ingress.normalized",
            "context.assembling",
            "prompt.built",
            "model.request",
            "tool.call.before",
            "tool.call.after",
            "egress.preparing",
            "egress.sent",
            "transcript.write",
        ]
    );
    assert_eq!(
        StageSet::ALL.iter().collect::<Vec<_>>(),
        Stage::ALL.to_vec()
    );
    assert!(StageSet::DECISIONS.iter().all(|s| s.allows(Mode::Decision)));
}

#[tokio::test]
async fn a_turn_runs_every_stage_in_order_through_every_mode() {
    let pipeline = Pipeline::default();
    let seen = log();
    pipeline
        .register(Registration::decision(
            "decide",
            StageSet::DECISIONS,
            Record("d", seen.clone()),
        ))
        .unwrap();
    pipeline
        .register(Registration::hot_path("hot", Record("h", seen.clone())))
        .unwrap();
    let observed = log();
    pipeline
        .register(Registration::observer(
            "watch",
            StageSet::ALL,
            Record("o", observed.clone()),
        ))
        .unwrap();

    let report = run_all_stages(&pipeline).await;
    assert_eq!(report.stages, Stage::ALL.to_vec());
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    let expected: Vec<String> = Stage::ALL
        .iter()
        .filter_map(|s| match s {
            Stage::IngressReceived | Stage::EgressSent => None,
            Stage::TranscriptWrite => Some(format!("h:{s}")),
            _ => Some(format!("d:{s}")),
        })
        .collect();
    assert_eq!(entries(&seen), expected);
    // Observers run concurrently, so only the set is fixed.
    let mut observed = entries(&observed);
    observed.sort();
    let mut expected: Vec<String> = Stage::ALL.iter().map(|s| format!("o:{s}")).collect();
    expected.sort();
    assert_eq!(observed, expected);
}

#[test]
fn registration_checks_modes_ids_and_deadlines() {
    let pipeline = Pipeline::default();
    let l = log();
    assert_eq!(
        pipeline.register(Registration::decision(
            "veto",
            Stage::IngressReceived,
            Record("x", l.clone())
        )),
        Err(RegistrationError::ModeNotAllowed {
            id: "veto".into(),
            stage: Stage::IngressReceived,
            mode: Mode::Decision,
        })
    );
    assert!(matches!(
        pipeline.register(Registration::decision(
            "late",
            Stage::TranscriptWrite,
            Record("x", l.clone())
        )),
        Err(RegistrationError::ModeNotAllowed { .. })
    ));
    let hot_elsewhere = Registration {
        stages: StageSet::only(Stage::EgressPreparing),
        ..Registration::hot_path("hot", Record("x", l.clone()))
    };
    assert!(matches!(
        pipeline.register(hot_elsewhere),
        Err(RegistrationError::ModeNotAllowed {
            mode: Mode::HotPath,
            ..
        })
    ));
    assert_eq!(
        pipeline.register(Registration::observer(
            "",
            StageSet::ALL,
            Record("x", l.clone())
        )),
        Err(RegistrationError::EmptyId)
    );
    assert_eq!(
        pipeline.register(Registration::observer(
            "o",
            StageSet::EMPTY,
            Record("x", l.clone())
        )),
        Err(RegistrationError::NoStages("o".into()))
    );
    assert_eq!(
        pipeline.register(
            Registration::observer("o", StageSet::ALL, Record("x", l.clone()))
                .with_deadline(Duration::ZERO)
        ),
        Err(RegistrationError::ZeroDeadline("o".into()))
    );
    pipeline
        .register(Registration::observer(
            "o",
            StageSet::ALL,
            Record("x", l.clone()),
        ))
        .unwrap();
    assert_eq!(
        pipeline.register(Registration::observer("o", StageSet::ALL, Record("x", l))),
        Err(RegistrationError::DuplicateId("o".into()))
    );
    let handlers = pipeline.handlers();
    assert_eq!(handlers.len(), 1);
    assert_eq!(handlers[0].deadline, Duration::from_secs(5));
}

#[tokio::test]
async fn emitting_the_wrong_payload_is_refused() {
    let pipeline = Pipeline::default();
    let mut turn = pipeline.begin_turn("main", "t1");
    let err = turn
        .emit(Stage::ToolCallBefore, payload_for(Stage::EgressSent))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PipelineError::PayloadMismatch {
            stage: Stage::ToolCallBefore,
            expected: PayloadKind::ToolCall,
            got: PayloadKind::Egress,
        }
    );
}

#[tokio::test]
async fn failing_and_panicking_observers_are_isolated() {
    let pipeline = Pipeline::default();
    let counted = Arc::new(AtomicUsize::new(0));
    struct Count(Arc<AtomicUsize>);
    impl Observer for Count {
        fn observe<'a>(&'a self, _: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
    }
    for (id, broken) in [
        ("a-fails", Broken::Fails),
        ("b-panics", Broken::PanicsInFuture),
        ("c-panics-at-call", Broken::PanicsAtCall),
    ] {
        pipeline
            .register(Registration::observer(id, Stage::EgressSent, broken))
            .unwrap();
    }
    pipeline
        .register(Registration::observer(
            "d-count",
            StageSet::ALL,
            Count(counted.clone()),
        ))
        .unwrap();

    let report = run_all_stages(&pipeline).await;
    assert_eq!(counted.load(Ordering::SeqCst), Stage::ALL.len());
    let mut kinds: Vec<(String, DiagnosticKind, Stage, Mode)> = report
        .diagnostics
        .iter()
        .map(|d| (d.handler_id.clone(), d.kind, d.stage, d.mode))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        vec![
            (
                "a-fails".into(),
                DiagnosticKind::Failed,
                Stage::EgressSent,
                Mode::Observer
            ),
            (
                "b-panics".into(),
                DiagnosticKind::Panicked,
                Stage::EgressSent,
                Mode::Observer
            ),
            (
                "c-panics-at-call".into(),
                DiagnosticKind::Panicked,
                Stage::EgressSent,
                Mode::Observer
            ),
        ]
    );
    let failed = report
        .diagnostics
        .iter()
        .find(|d| d.handler_id == "a-fails")
        .unwrap();
    assert_eq!(failed.detail, "disk full");
    let panicked = report
        .diagnostics
        .iter()
        .find(|d| d.handler_id == "b-panics")
        .unwrap();
    assert!(
        panicked.detail.contains("observer bug"),
        "{}",
        panicked.detail
    );
}

#[tokio::test]
async fn a_slow_observer_does_not_delay_the_turn_and_overruns_its_deadline() {
    let pipeline = Pipeline::default();
    pipeline
        .register(
            Registration::observer("stuck", StageSet::ALL, Stuck)
                .with_deadline(Duration::from_millis(300)),
        )
        .unwrap();
    pipeline
        .register(Registration::observer(
            "sleepy",
            Stage::IngressReceived,
            Sleepy(Duration::from_secs(3600)),
        ))
        .unwrap();

    let started = std::time::Instant::now();
    let mut turn = pipeline.begin_turn("main", "t1");
    for stage in Stage::ALL {
        turn.emit(stage, payload_for(stage)).await.unwrap();
    }
    let turn_time = started.elapsed();
    assert!(
        turn_time < Duration::from_millis(150),
        "turn took {turn_time:?}"
    );
    assert!(turn.diagnostics().is_empty());

    // `finish` does not wait; a settled second turn shows the overruns.
    let report = turn.finish();
    assert_eq!(report.stages.len(), Stage::ALL.len());

    let mut turn = pipeline.begin_turn("main", "t2");
    turn.emit(Stage::EgressSent, payload_for(Stage::EgressSent))
        .await
        .unwrap();
    let report = turn.settle().await;
    assert_eq!(report.diagnostics.len(), 1);
    let d = &report.diagnostics[0];
    assert_eq!(
        (d.handler_id.as_str(), d.kind),
        ("stuck", DiagnosticKind::Overrun)
    );
    assert!(d.elapsed >= Duration::from_millis(300), "{:?}", d.elapsed);
    assert!(d.elapsed < Duration::from_secs(2), "{:?}", d.elapsed);
}

#[tokio::test(start_paused = true)]
async fn observers_default_to_a_five_second_deadline() {
    let pipeline = Pipeline::default();
    pipeline
        .register(Registration::observer(
            "sleepy",
            Stage::EgressSent,
            Sleepy(Duration::from_secs(60)),
        ))
        .unwrap();
    let mut turn = pipeline.begin_turn("main", "t1");
    turn.emit(Stage::EgressSent, payload_for(Stage::EgressSent))
        .await
        .unwrap();
    let report = turn.settle().await;
    assert_eq!(report.diagnostics.len(), 1);
    assert_eq!(report.diagnostics[0].kind, DiagnosticKind::Overrun);
    assert_eq!(report.diagnostics[0].elapsed, Duration::from_secs(5));
}

#[tokio::test]
async fn observers_beyond_the_in_flight_cap_are_dropped_with_a_diagnostic() {
    let pipeline = Pipeline::new(PipelineConfig {
        max_pending_observers: 1,
        ..PipelineConfig::default()
    });
    pipeline
        .register(
            Registration::observer("a-stuck", Stage::EgressSent, Stuck)
                .with_deadline(Duration::from_millis(100)),
        )
        .unwrap();
    pipeline
        .register(Registration::observer(
            "b-next",
            Stage::EgressSent,
            Record("b", log()),
        ))
        .unwrap();
    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(Stage::EgressSent, payload_for(Stage::EgressSent))
        .await
        .unwrap();
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].handler_id, "b-next");
    assert_eq!(outcome.diagnostics[0].kind, DiagnosticKind::Dropped);
    let report = turn.settle().await;
    assert_eq!(report.diagnostics.len(), 2);

    // The permit is back once the stuck observer hit its deadline.
    let mut turn = pipeline.begin_turn("main", "t2");
    let outcome = turn
        .emit(Stage::EgressSent, payload_for(Stage::EgressSent))
        .await
        .unwrap();
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].handler_id, "b-next");
}

#[tokio::test]
async fn decisions_run_by_priority_then_id() {
    let pipeline = Pipeline::default();
    let seen = log();
    // Registered out of order on purpose.
    for (id, priority) in [("b", 0), ("d", -5), ("c", 10), ("a", 0), ("e", 10)] {
        pipeline
            .register(
                Registration::decision(id, Stage::ToolCallBefore, Record(id, seen.clone()))
                    .with_priority(priority),
            )
            .unwrap();
    }
    let mut turn = pipeline.begin_turn("main", "t1");
    turn.emit(Stage::ToolCallBefore, payload_for(Stage::ToolCallBefore))
        .await
        .unwrap();
    let order: Vec<String> = entries(&seen)
        .into_iter()
        .map(|s| s.split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["c", "e", "a", "b", "d"]);
}

#[tokio::test]
async fn a_cancel_is_terminal_and_reported() {
    let pipeline = Pipeline::default();
    let seen = log();
    pipeline
        .register(Registration::decision(
            "a",
            Stage::ToolCallBefore,
            Record("a", seen.clone()),
        ))
        .unwrap();
    pipeline
        .register(Registration::decision(
            "b-policy",
            Stage::ToolCallBefore,
            Decide(|_: &TurnEvent| {
                Ok(Decision::Cancel {
                    reason: "camera is off limits".into(),
                })
            }),
        ))
        .unwrap();
    pipeline
        .register(Registration::decision(
            "c",
            Stage::ToolCallBefore,
            Record("c", seen.clone()),
        ))
        .unwrap();
    let cancels_seen = log();
    struct SeesCancel(Log);
    impl Observer for SeesCancel {
        fn observe<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
            let reason = event
                .cancelled
                .as_ref()
                .map(|c| c.reason.clone())
                .unwrap_or_default();
            self.0.lock().unwrap().push(reason);
            Box::pin(async { Ok(()) })
        }
    }
    pipeline
        .register(Registration::observer(
            "audit",
            Stage::ToolCallBefore,
            SeesCancel(cancels_seen.clone()),
        ))
        .unwrap();

    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(Stage::ToolCallBefore, payload_for(Stage::ToolCallBefore))
        .await
        .unwrap();
    assert_eq!(entries(&seen), ["a:tool.call.before"]);
    let cancel = outcome.cancelled.clone().unwrap();
    assert_eq!(cancel.handler_id, "b-policy");
    assert_eq!(cancel.reason, "camera is off limits");
    assert_eq!(outcome.into_payload(), payload_for(Stage::ToolCallBefore));

    // The next stage runs normally; the turn decides what a cancel means.
    let outcome = turn
        .emit(Stage::ToolCallAfter, payload_for(Stage::ToolCallAfter))
        .await
        .unwrap();
    assert!(!outcome.is_cancelled());
    let report = turn.settle().await;
    assert_eq!(report.cancellations.len(), 1);
    assert_eq!(report.cancellations[0].stage, Stage::ToolCallBefore);
    assert_eq!(entries(&cancels_seen), ["camera is off limits"]);
}

#[tokio::test]
async fn modifications_chain_and_observers_see_the_result() {
    let pipeline = Pipeline::default();
    fn add_block(source: &'static str) -> impl Fn(&TurnEvent) -> Result<Decision, HandlerError> {
        move |event: &TurnEvent| {
            let StagePayload::Context(context) = event.payload.as_ref() else {
                return Err(HandlerError::new("not a context payload"));
            };
            let text = format!("{source} after {} blocks", context.blocks.len());
            Ok(Decision::Modify(StagePayload::Context(
                context.clone().with_block(ContextBlock {
                    source: source.into(),
                    label: "device context".into(),
                    trust: Trust::Untrusted,
                    text,
                }),
            )))
        }
    }
    pipeline
        .register(
            Registration::decision(
                "location",
                Stage::ContextAssembling,
                Decide(add_block("location")),
            )
            .with_priority(1),
        )
        .unwrap();
    pipeline
        .register(Registration::decision(
            "presence",
            Stage::ContextAssembling,
            Decide(add_block("presence")),
        ))
        .unwrap();
    // A handler that answers with the wrong payload is ignored with a diagnostic.
    pipeline
        .register(Registration::decision(
            "wrong",
            Stage::ContextAssembling,
            Decide(|_: &TurnEvent| Ok(Decision::Modify(payload_for(Stage::EgressSent)))),
        ))
        .unwrap();
    let observed = log();
    struct Blocks(Log);
    impl Observer for Blocks {
        fn observe<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
            if let StagePayload::Context(c) = event.payload.as_ref() {
                let mut log = self.0.lock().unwrap();
                log.extend(c.blocks.iter().map(|b| b.text.clone()));
            }
            Box::pin(async { Ok(()) })
        }
    }
    pipeline
        .register(Registration::observer(
            "watch",
            Stage::ContextAssembling,
            Blocks(observed.clone()),
        ))
        .unwrap();

    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(
            Stage::ContextAssembling,
            StagePayload::Context(ContextPayload::default()),
        )
        .await
        .unwrap();
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].handler_id, "wrong");
    assert_eq!(outcome.diagnostics[0].kind, DiagnosticKind::Failed);
    let StagePayload::Context(context) = outcome.into_payload() else {
        panic!("context payload expected");
    };
    let texts: Vec<&str> = context.blocks.iter().map(|b| b.text.as_str()).collect();
    assert_eq!(
        texts,
        ["location after 0 blocks", "presence after 1 blocks"]
    );
    assert!(context.blocks.iter().all(|b| b.trust == Trust::Untrusted));
    turn.settle().await;
    assert_eq!(
        entries(&observed),
        ["location after 0 blocks", "presence after 1 blocks"]
    );
}

#[tokio::test]
async fn a_decision_handler_can_rewrite_a_tool_call() {
    let pipeline = Pipeline::default();
    pipeline
        .register(Registration::decision(
            "coarsen",
            Stage::ToolCallBefore,
            Decide(|event: &TurnEvent| {
                let StagePayload::ToolCall(call) = event.payload.as_ref() else {
                    return Ok(Decision::Continue);
                };
                let mut call = call.clone();
                call.arguments["precision"] = json!("city");
                Ok(Decision::Modify(StagePayload::ToolCall(call)))
            }),
        ))
        .unwrap();
    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(Stage::ToolCallBefore, payload_for(Stage::ToolCallBefore))
        .await
        .unwrap();
    let StagePayload::ToolCall(call) = outcome.into_payload() else {
        panic!("tool call expected");
    };
    assert_eq!(call.arguments, json!({"precision": "city"}));
}

#[tokio::test(start_paused = true)]
async fn an_overrunning_decision_counts_as_continue() {
    let pipeline = Pipeline::default();
    let seen = log();
    pipeline
        .register(
            Registration::decision(
                "a-slow",
                Stage::EgressPreparing,
                Sleepy(Duration::from_secs(1)),
            )
            .with_deadline(Duration::from_millis(50)),
        )
        .unwrap();
    pipeline
        .register(Registration::decision(
            "b-default",
            Stage::EgressPreparing,
            Sleepy(Duration::from_secs(60)),
        ))
        .unwrap();
    pipeline
        .register(Registration::decision(
            "c",
            Stage::EgressPreparing,
            Record("c", seen.clone()),
        ))
        .unwrap();

    let started = tokio::time::Instant::now();
    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(Stage::EgressPreparing, payload_for(Stage::EgressPreparing))
        .await
        .unwrap();
    // Both slow handlers were cut at their deadlines; their late cancels never counted.
    assert_eq!(started.elapsed(), Duration::from_millis(5050));
    assert!(!outcome.is_cancelled());
    assert_eq!(entries(&seen), ["c:egress.preparing"]);
    let diags: Vec<(&str, DiagnosticKind, Duration)> = outcome
        .diagnostics
        .iter()
        .map(|d| (d.handler_id.as_str(), d.kind, d.elapsed))
        .collect();
    assert_eq!(
        diags,
        [
            ("a-slow", DiagnosticKind::Overrun, Duration::from_millis(50)),
            ("b-default", DiagnosticKind::Overrun, Duration::from_secs(5)),
        ]
    );
    assert_eq!(turn.finish().diagnostics.len(), 2);
}

#[tokio::test]
async fn failing_and_panicking_decisions_count_as_continue() {
    let pipeline = Pipeline::default();
    let seen = log();
    for (id, broken) in [
        ("a", Broken::Fails),
        ("b", Broken::PanicsInFuture),
        ("c", Broken::PanicsAtCall),
    ] {
        pipeline
            .register(Registration::decision(id, Stage::IngressNormalized, broken))
            .unwrap();
    }
    pipeline
        .register(Registration::decision(
            "d",
            Stage::IngressNormalized,
            Record("d", seen.clone()),
        ))
        .unwrap();
    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(
            Stage::IngressNormalized,
            payload_for(Stage::IngressNormalized),
        )
        .await
        .unwrap();
    assert!(!outcome.is_cancelled());
    assert_eq!(entries(&seen), ["d:ingress.normalized"]);
    let kinds: Vec<DiagnosticKind> = outcome.diagnostics.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [
            DiagnosticKind::Failed,
            DiagnosticKind::Panicked,
            DiagnosticKind::Panicked
        ]
    );
}

#[tokio::test]
async fn hot_path_handlers_run_inline_in_order_and_may_veto_the_write() {
    let pipeline = Pipeline::default();
    let seen = log();
    for (id, priority) in [("z-last", -1), ("b", 0), ("a", 0), ("first", 5)] {
        pipeline
            .register(Registration::hot_path(id, Record(id, seen.clone())).with_priority(priority))
            .unwrap();
    }
    let mut turn = pipeline.begin_turn("main", "t1");
    turn.emit(Stage::TranscriptWrite, payload_for(Stage::TranscriptWrite))
        .await
        .unwrap();
    let order: Vec<String> = entries(&seen)
        .into_iter()
        .map(|s| s.split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["first", "a", "b", "z-last"]);

    // Redaction (modify) chains into a veto; later handlers do not run.
    let pipeline = Pipeline::default();
    let seen = log();
    pipeline
        .register(
            Registration::hot_path(
                "redact",
                Decide(|event: &TurnEvent| {
                    let StagePayload::Transcript(t) = event.payload.as_ref() else {
                        return Ok(Decision::Continue);
                    };
                    let mut t = t.clone();
                    if let ChatMessage::User { text } = &mut t.message {
                        *text = text.replace("secret", "[redacted]");
                    }
                    Ok(Decision::Modify(StagePayload::Transcript(t)))
                }),
            )
            .with_priority(2),
        )
        .unwrap();
    pipeline
        .register(
            Registration::hot_path(
                "panics",
                Decide(|_: &TurnEvent| -> Result<Decision, HandlerError> {
                    panic!("hot path bug")
                }),
            )
            .with_priority(1),
        )
        .unwrap();
    pipeline
        .register(Registration::hot_path(
            "veto",
            Decide(|event: &TurnEvent| match event.payload.as_ref() {
                StagePayload::Transcript(TranscriptPayload {
                    message: ChatMessage::User { text },
                }) if text.contains("[redacted]") => Ok(Decision::Cancel {
                    reason: "redacted messages are not kept".into(),
                }),
                _ => Ok(Decision::Continue),
            }),
        ))
        .unwrap();
    pipeline
        .register(
            Registration::hot_path("zz-after", Record("after", seen.clone())).with_priority(-1),
        )
        .unwrap();
    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(
            Stage::TranscriptWrite,
            StagePayload::Transcript(TranscriptPayload {
                message: ChatMessage::User {
                    text: "my secret".into(),
                },
            }),
        )
        .await
        .unwrap();
    assert_eq!(outcome.cancelled.as_ref().unwrap().handler_id, "veto");
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].kind, DiagnosticKind::Panicked);
    assert_eq!(outcome.diagnostics[0].mode, Mode::HotPath);
    assert!(entries(&seen).is_empty());
}

#[tokio::test]
async fn a_slow_hot_path_handler_is_reported_and_its_answer_kept() {
    let pipeline = Pipeline::default();
    pipeline
        .register(
            Registration::hot_path(
                "slow",
                Decide(|_: &TurnEvent| {
                    std::thread::sleep(Duration::from_millis(20));
                    Ok(Decision::Cancel {
                        reason: "slow veto".into(),
                    })
                }),
            )
            .with_deadline(Duration::from_millis(1)),
        )
        .unwrap();
    let mut turn = pipeline.begin_turn("main", "t1");
    let outcome = turn
        .emit(Stage::TranscriptWrite, payload_for(Stage::TranscriptWrite))
        .await
        .unwrap();
    assert_eq!(outcome.cancelled.unwrap().reason, "slow veto");
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].kind, DiagnosticKind::Overrun);
    assert!(outcome.diagnostics[0].elapsed >= Duration::from_millis(20));
}

#[tokio::test]
async fn a_running_turn_keeps_its_handlers_when_the_registry_changes() {
    let pipeline = Pipeline::default();
    let seen = log();
    pipeline
        .register(Registration::decision(
            "a",
            StageSet::DECISIONS,
            Record("a", seen.clone()),
        ))
        .unwrap();
    let mut running = pipeline.begin_turn("main", "t1");
    assert!(pipeline.unregister("a"));
    assert!(!pipeline.unregister("a"));
    pipeline
        .register(Registration::decision(
            "b",
            StageSet::DECISIONS,
            Record("b", seen.clone()),
        ))
        .unwrap();
    running
        .emit(Stage::PromptBuilt, payload_for(Stage::PromptBuilt))
        .await
        .unwrap();
    let mut next = pipeline.begin_turn("main", "t2");
    next.emit(Stage::PromptBuilt, payload_for(Stage::PromptBuilt))
        .await
        .unwrap();
    assert_eq!(entries(&seen), ["a:prompt.built", "b:prompt.built"]);
}
