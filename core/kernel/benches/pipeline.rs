//! Per-turn overhead of the canonical event pipeline: one turn emits all ten stages once, with
//! 0, 10 and 100 registered handlers.
//!
//! The mix is mostly observers, some decision handlers, a couple of hot-path no-ops:
//! - 10 handlers: 7 observers, 2 decision handlers, 1 hot-path handler;
//! - 100 handlers: 80 observers, 18 decision handlers, 2 hot-path handlers.
//!
//! Each observer subscribes to 3 stages and each decision handler to 2 (rotating), as real
//! handlers do; the first decision handler adds a context block (like the location block),
//! the others continue. `all-stages/100` is the worst case: every handler on every stage it
//! may take. Two timings per case:
//! - `turn`: what the turn waits for (decisions, hot path, spawning observers);
//! - `settled`: the same turn plus waiting until every observer has run.
//!
//! `cargo bench -p perch-kernel --bench pipeline`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures_util::future::BoxFuture;
use serde_json::json;

use perch_kernel::model::{ChatMessage, ModelRequest};
use perch_kernel::pipeline::{
    ContextBlock, ContextPayload, Decision, DecisionHandler, EgressPayload, HandlerError,
    HotPathHandler, IngressPayload, ModelCallPayload, Observer, PayloadKind, Pipeline,
    PipelineConfig, Registration, Stage, StagePayload, StageSet, ToolCallPayload,
    ToolResultPayload, TranscriptPayload, Trust, TurnEvent,
};

struct CountingObserver(Arc<AtomicU64>);

impl Observer for CountingObserver {
    fn observe<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<(), HandlerError>> {
        let weight = event.payload.kind() as u64 + 1;
        self.0.fetch_add(weight, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

struct ContinueHandler;

impl DecisionHandler for ContinueHandler {
    fn decide<'a>(&'a self, _: &'a TurnEvent) -> BoxFuture<'a, Result<Decision, HandlerError>> {
        Box::pin(async { Ok(Decision::Continue) })
    }
}

/// Adds one context block, like the location handler.
struct ContextAdder;

impl DecisionHandler for ContextAdder {
    fn decide<'a>(&'a self, event: &'a TurnEvent) -> BoxFuture<'a, Result<Decision, HandlerError>> {
        let answer = match event.payload.as_ref() {
            StagePayload::Context(c) => {
                Decision::Modify(StagePayload::Context(c.clone().with_block(ContextBlock {
                    source: "location".into(),
                    label: "device context".into(),
                    trust: Trust::Untrusted,
                    text: "The user is at Home (Lisbon), local time 09:41 (Europe/Lisbon).".into(),
                })))
            }
            _ => Decision::Continue,
        };
        Box::pin(async move { Ok(answer) })
    }
}

struct NoopHotPath;

impl HotPathHandler for NoopHotPath {
    fn handle(&self, _: &TurnEvent) -> Result<Decision, HandlerError> {
        Ok(Decision::Continue)
    }
}

fn payload_for(stage: Stage) -> StagePayload {
    let request = ModelRequest {
        model: "gpt-4.1-mini".into(),
        system: Some("You are Perch.".into()),
        messages: vec![ChatMessage::User {
            text: "Where am I?".into(),
        }],
        tools: vec![],
        max_tokens: None,
    };
    match stage.payload_kind() {
        PayloadKind::Ingress => StagePayload::Ingress(IngressPayload {
            channel: "cli".into(),
            sender: None,
            text: "Where am I?".into(),
        }),
        PayloadKind::Context => StagePayload::Context(ContextPayload::default()),
        PayloadKind::Prompt => StagePayload::Prompt(request),
        PayloadKind::ModelCall => StagePayload::ModelCall(ModelCallPayload {
            provider: "openai".into(),
            request,
        }),
        PayloadKind::ToolCall => StagePayload::ToolCall(ToolCallPayload {
            call_id: "call_1".into(),
            tool: "location_get".into(),
            arguments: json!({}),
        }),
        PayloadKind::ToolResult => StagePayload::ToolResult(ToolResultPayload {
            call_id: "call_1".into(),
            tool: "location_get".into(),
            output: json!({"lat": 38.72, "lon": -9.14, "accuracy_m": 12}),
            is_error: false,
        }),
        PayloadKind::Egress => StagePayload::Egress(EgressPayload {
            channel: "cli".into(),
            text: "You are at Home.".into(),
        }),
        PayloadKind::Transcript => StagePayload::Transcript(TranscriptPayload {
            message: ChatMessage::User {
                text: "Where am I?".into(),
            },
        }),
    }
}

/// `n` handlers in the mix above; `all_stages` puts each on every stage it may take.
fn pipeline(n: usize, all_stages: bool, counter: &Arc<AtomicU64>) -> Pipeline {
    let pipeline = Pipeline::new(PipelineConfig {
        // Fire-and-forget observers outlive their turn; keep the cap out of the measurement.
        max_pending_observers: 1 << 20,
        ..PipelineConfig::default()
    });
    let (hot, decisions) = match n {
        0 => (0, 0),
        n if n <= 10 => (1, 2),
        n => (2, n * 18 / 100),
    };
    let observers = n - hot - decisions;
    let decision_stages: Vec<Stage> = StageSet::DECISIONS.iter().collect();
    for i in 0..observers {
        let stages = if all_stages {
            StageSet::ALL
        } else {
            [0, 3, 6]
                .into_iter()
                .map(|k| Stage::ALL[(i + k) % Stage::ALL.len()])
                .collect()
        };
        let reg = Registration::observer(
            format!("observer-{i:03}"),
            stages,
            CountingObserver(counter.clone()),
        );
        pipeline.register(reg).expect("valid observer");
    }
    for i in 0..decisions {
        let stages = if all_stages {
            StageSet::DECISIONS
        } else if i == 0 {
            StageSet::only(Stage::ContextAssembling)
        } else {
            [0, 1]
                .into_iter()
                .map(|k| decision_stages[(2 * i + k) % decision_stages.len()])
                .collect()
        };
        let reg = if i == 0 {
            Registration::decision(format!("decision-{i:03}"), stages, ContextAdder)
        } else {
            Registration::decision(format!("decision-{i:03}"), stages, ContinueHandler)
        };
        pipeline
            .register(reg.with_priority((i % 3) as i32))
            .expect("valid decision handler");
    }
    for i in 0..hot {
        pipeline
            .register(Registration::hot_path(format!("hot-{i}"), NoopHotPath))
            .expect("valid hot-path handler");
    }
    pipeline
}

async fn one_turn(pipeline: &Pipeline, payloads: &[(Stage, StagePayload)], settle: bool) {
    let mut turn = pipeline.begin_turn("main", "turn-1");
    for (stage, payload) in payloads {
        let outcome = turn
            .emit(*stage, payload.clone())
            .await
            .expect("payload matches");
        std::hint::black_box(&outcome);
    }
    let report = if settle {
        turn.settle().await
    } else {
        turn.finish()
    };
    debug_assert!(report.diagnostics.is_empty());
    std::hint::black_box(report);
}

fn bench_pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let payloads: Vec<(Stage, StagePayload)> =
        Stage::ALL.iter().map(|s| (*s, payload_for(*s))).collect();
    let counter = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("pipeline");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    let cases = [(0, false), (10, false), (100, false), (100, true)];
    for (n, all_stages) in cases {
        let pipeline = pipeline(n, all_stages, &counter);
        let label = if all_stages { "all-stages" } else { "mix" };
        for (name, settle) in [("turn", false), ("settled", true)] {
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/{label}"), n),
                &n,
                |b, _| {
                    b.to_async(&runtime)
                        .iter(|| one_turn(&pipeline, &payloads, settle));
                },
            );
        }
    }
    group.finish();
    std::hint::black_box(counter.load(Ordering::Relaxed));
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
