//! Capability catalog compilation with 1,000 entries, and call-time routing of a ranked tool.
//!
//! The catalog: 100 built-in tools; 100 connected nodes with `location.get`, `device.info`,
//! `device.status` (ranked) and `system.notify` (parallel), 400 entries; 50 extensions with
//! 10 tools each, 500 entries, where every extension has a tool named `search` (49 name
//! collisions to settle) and 5 of them compete for the exclusive `memory.search` slot.
//!
//! `cargo bench -p perch-kernel --bench catalog`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use perch_kernel::catalog::{
    Arbitration, Catalog, CatalogEntry, RankHints, Source, ToolContext, ToolError, ToolExecutor,
};

struct Noop;

impl ToolExecutor for Noop {
    fn execute(&self, _: Value, _: ToolContext) -> BoxFuture<'_, Result<Value, ToolError>> {
        Box::pin(async { Ok(Value::Null) })
    }
}

fn schema(fields: usize) -> Value {
    let properties: serde_json::Map<String, Value> = (0..fields)
        .map(|i| {
            (
                format!("field_{i}"),
                json!({"type": "string", "description": "An argument of this tool."}),
            )
        })
        .collect();
    json!({"type": "object", "properties": properties, "required": ["field_0"]})
}

fn catalog() -> Catalog {
    let catalog = Catalog::default();
    let executor: Arc<dyn ToolExecutor> = Arc::new(Noop);
    let add = |e: CatalogEntry| {
        catalog.register(e).expect("valid entry");
    };
    for i in 0..100 {
        add(CatalogEntry::new(
            format!("builtin:tool.{i:03}"),
            format!("builtin.tool_{i:03}"),
            Source::Builtin,
            executor.clone(),
        )
        .with_description("A built-in tool of the host.")
        .with_parameters(schema(3)));
    }
    catalog.set_arbitration("system.notify", Arbitration::Parallel);
    catalog.set_arbitration("memory.search", Arbitration::ExclusiveSlot { owner: None });
    for n in 0..100u64 {
        let node_id = format!("{:064x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let source = Source::Node {
            node_id: node_id.clone(),
            display_name: format!("Device {n}"),
        };
        for command in [
            "location.get",
            "device.info",
            "device.status",
            "system.notify",
        ] {
            let hints = RankHints {
                active: n == 42,
                freshness_ms: Some(1_000 * (n % 17)),
                precision_m: Some(5.0 + (n % 13) as f64),
                priority: 0,
            };
            add(CatalogEntry::new(
                format!("node:{node_id}:{command}"),
                command,
                source.clone(),
                executor.clone(),
            )
            .with_description("A command of a paired device.")
            .with_parameters(schema(2))
            .with_hints(hints));
        }
    }
    for e in 0..50 {
        let source = Source::Extension {
            id: format!("ext-{e:02}"),
        };
        for t in 0..10 {
            let (capability, name) = match t {
                0 => (format!("ext-{e:02}.search"), "search".to_owned()),
                1 if e < 5 => ("memory.search".to_owned(), "memory.search".to_owned()),
                _ => {
                    let c = format!("ext-{e:02}.tool-{t}");
                    (c.clone(), c)
                }
            };
            add(CatalogEntry::new(
                format!("ext:ext-{e:02}:{t}"),
                capability,
                source.clone(),
                executor.clone(),
            )
            .with_name(name)
            .with_description("A tool contributed by an extension.")
            .with_parameters(schema(4)));
        }
    }
    catalog
}

fn bench_catalog(c: &mut Criterion) {
    let catalog = catalog();
    assert_eq!(catalog.len(), 1_000);
    let compiled = catalog.compile();
    // Echo the shape once so the figures can be read against it.
    eprintln!(
        "catalog: {} entries -> {} tools, {} collisions, {} slot conflicts",
        catalog.len(),
        compiled.tools.len(),
        compiled.report.collisions.len(),
        compiled.report.slot_conflicts.len()
    );

    let mut group = c.benchmark_group("catalog");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    group.bench_function("compile/1000", |b| {
        b.iter(|| std::hint::black_box(catalog.compile()));
    });
    group.bench_function("route/ranked-100-nodes", |b| {
        b.iter(|| {
            let routed = compiled
                .route("location_get", json!({"field_0": "x"}))
                .expect("a provider");
            std::hint::black_box(routed)
        });
    });
    group.bench_function("route/named-node", |b| {
        b.iter(|| {
            let routed = compiled
                .route("location_get", json!({"field_0": "x", "node": "Device 7"}))
                .expect("a provider");
            std::hint::black_box(routed)
        });
    });
    group.finish();
}

criterion_group!(benches, bench_catalog);
criterion_main!(benches);
