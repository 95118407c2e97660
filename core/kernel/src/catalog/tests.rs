use super::*;

/// Answers with which entry ran and what it got.
struct Echo(&'static str);

impl ToolExecutor for Echo {
    fn execute(&self, args: Value, ctx: ToolContext) -> BoxFuture<'_, Result<Value, ToolError>> {
        Box::pin(async move {
            Ok(json!({
                "by": self.0,
                "args": args,
                "tool": ctx.tool,
                "capability": ctx.capability,
                "entry": ctx.entry_id,
                "call": ctx.call_id,
            }))
        })
    }
}

fn node(id: &str, name: &str) -> Source {
    Source::Node {
        node_id: id.into(),
        display_name: name.into(),
    }
}

fn ext(id: &str) -> Source {
    Source::Extension { id: id.into() }
}

fn entry(id: &str, capability: &str, source: Source) -> CatalogEntry {
    CatalogEntry::new(id, capability, source, Arc::new(Echo("x")))
        .with_description(format!("{capability} tool"))
}

fn node_location(node_id: &str, name: &str, hints: RankHints) -> CatalogEntry {
    entry(
        &format!("node:{node_id}:location.get"),
        "location.get",
        node(node_id, name),
    )
    .with_description("Where the user's device is.")
    .with_parameters(json!({
        "type": "object",
        "properties": {"max_age_ms": {"type": "integer"}},
    }))
    .with_hints(hints)
}

fn names(compiled: &CompiledTools) -> Vec<&str> {
    compiled.tools.iter().map(|t| t.name.as_str()).collect()
}

fn routed(compiled: &CompiledTools, tool: &str, args: Value) -> String {
    compiled.route(tool, args).unwrap().entry.id.clone()
}

#[test]
fn compiles_ranked_node_tools_and_builtins() {
    let catalog = Catalog::default();
    catalog
        .register(entry("builtin:time.now", "time.now", Source::Builtin))
        .unwrap();
    catalog
        .register(node_location("aaaa1111", "Pixel", RankHints::default()))
        .unwrap();
    catalog
        .register(node_location(
            "bbbb2222",
            "Kitchen iPad",
            RankHints::default(),
        ))
        .unwrap();

    let compiled = catalog.compile();
    assert_eq!(names(&compiled), ["location_get", "time_now"]);
    assert!(compiled.report.is_clean());
    assert_eq!(compiled.generation, catalog.generation());
    let location = &compiled.tools[0];
    assert_eq!(location.description, "Where the user's device is.");
    assert_eq!(
        location.parameters["properties"]["node"]["enum"],
        json!(["Kitchen iPad", "Pixel"])
    );
    assert_eq!(
        location.parameters["properties"]["max_age_ms"],
        json!({"type": "integer"})
    );
    assert_eq!(location.parameters["type"], "object");
    assert!(
        location.parameters.get("required").is_none(),
        "node is optional"
    );
    let time = &compiled.tools[1];
    assert!(time.parameters["properties"].get("node").is_none());

    assert_eq!(compiled.original_name("location_get"), Some("location.get"));
    assert_eq!(compiled.original_name("time_now"), Some("time.now"));
    assert_eq!(compiled.original_name("location.get"), None);
    let route = compiled.lookup("location_get").unwrap();
    assert_eq!(route.kind, RouteKind::Ranked);
    assert_eq!(
        route.providers,
        ["node:aaaa1111:location.get", "node:bbbb2222:location.get"]
    );
    assert_eq!(
        compiled.tools_for_capability("location.get"),
        ["location_get"]
    );
    assert!(compiled.tools.iter().all(|t| is_valid_tool_name(&t.name)));
}

#[test]
fn a_ranked_capability_without_nodes_has_no_node_argument() {
    let catalog = Catalog::default();
    catalog
        .register(entry("builtin:web.search", "web.search", Source::Builtin))
        .unwrap();
    catalog
        .register(entry("ext:brave:web.search", "web.search", ext("brave")))
        .unwrap();
    let compiled = catalog.compile();
    assert_eq!(names(&compiled), ["web_search"]);
    assert!(
        compiled.tools[0].parameters["properties"]
            .get("node")
            .is_none()
    );
    assert!(compiled.lookup("web_search").unwrap().selectors.is_empty());
    // Both equal: the smaller id wins.
    assert_eq!(
        routed(&compiled, "web_search", json!({})),
        "builtin:web.search"
    );
}

#[test]
fn ranked_calls_prefer_active_then_fresh_then_precise_then_id() {
    let catalog = Catalog::default();
    let stale_precise = RankHints {
        freshness_ms: Some(600_000),
        precision_m: Some(5.0),
        ..RankHints::default()
    };
    let fresh_coarse = RankHints {
        freshness_ms: Some(1_000),
        precision_m: Some(3_000.0),
        ..RankHints::default()
    };
    catalog
        .register(node_location("a", "A", stale_precise))
        .unwrap();
    catalog
        .register(node_location("b", "B", fresh_coarse))
        .unwrap();
    catalog
        .register(node_location("c", "C", RankHints::default()))
        .unwrap();
    let compiled = catalog.compile();

    // Freshest wins when nobody is active; unknown freshness ranks last.
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:b:location.get"
    );
    assert_eq!(
        compiled.ranked_providers("location_get"),
        [
            "node:b:location.get",
            "node:a:location.get",
            "node:c:location.get"
        ]
    );

    // The active device wins over fresher ones, even with no fix age known; hints are read
    // at call time, without recompiling.
    catalog.set_active_node(Some("c"));
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:c:location.get"
    );
    catalog.set_active_node(None);

    // Same freshness: the more precise wins.
    let same_age = |precision| RankHints {
        freshness_ms: Some(1_000),
        precision_m: precision,
        ..RankHints::default()
    };
    assert!(catalog.set_hints("node:a:location.get", same_age(Some(10.0))));
    assert!(catalog.set_hints("node:b:location.get", same_age(Some(3_000.0))));
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:a:location.get"
    );
    // Unknown precision (or NaN) ranks after a known one.
    assert!(catalog.set_hints("node:a:location.get", same_age(Some(f64::NAN))));
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:b:location.get"
    );

    // All equal: the smallest id.
    for id in ["a", "b", "c"] {
        assert!(catalog.set_hints(&format!("node:{id}:location.get"), same_age(Some(10.0))));
    }
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:a:location.get"
    );

    // Operator priority beats everything.
    catalog.set_active_node(Some("a"));
    let preferred = RankHints {
        priority: 1,
        ..RankHints::default()
    };
    assert!(catalog.set_hints("node:c:location.get", preferred));
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:c:location.get"
    );
    assert!(!catalog.set_hints("missing", preferred));
}

#[tokio::test]
async fn the_model_can_name_a_node_and_the_argument_is_not_passed_on() {
    let catalog = Catalog::default();
    catalog
        .register(node_location("aaaa1111ffff", "Pixel", RankHints::default()))
        .unwrap();
    catalog
        .register(
            node_location("bbbb2222ffff", "Kitchen iPad", RankHints::default()).with_hints(
                RankHints {
                    active: true,
                    ..RankHints::default()
                },
            ),
        )
        .unwrap();
    let compiled = catalog.compile();

    let ctx = ToolContext::new("main", "t1", "call-1");
    let out = compiled
        .call(
            "location_get",
            json!({"node": "Pixel", "max_age_ms": 5}),
            ctx.clone(),
        )
        .await
        .unwrap();
    assert_eq!(out["entry"], "node:aaaa1111ffff:location.get");
    assert_eq!(out["args"], json!({"max_age_ms": 5}));
    assert_eq!(out["tool"], "location_get");
    assert_eq!(out["capability"], "location.get");
    assert_eq!(out["call"], "call-1");

    // Case-insensitive names and full node ids work too; null or empty means "you pick".
    assert_eq!(
        routed(&compiled, "location_get", json!({"node": "kitchen ipad"})),
        "node:bbbb2222ffff:location.get"
    );
    assert_eq!(
        routed(&compiled, "location_get", json!({"node": "aaaa1111ffff"})),
        "node:aaaa1111ffff:location.get"
    );
    assert_eq!(
        routed(&compiled, "location_get", json!({"node": null})),
        "node:bbbb2222ffff:location.get"
    );
    assert_eq!(
        routed(&compiled, "location_get", Value::Null),
        "node:bbbb2222ffff:location.get"
    );
    assert_eq!(
        routed(&compiled, "location_get", json!({"node": ""})),
        "node:bbbb2222ffff:location.get"
    );

    let err = compiled
        .route("location_get", json!({"node": "Fridge"}))
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidArguments(m) if m.contains("Kitchen iPad, Pixel")),
        "{err}"
    );
    assert!(matches!(
        compiled.route("location_get", json!({"node": 7})),
        Err(ToolError::InvalidArguments(_))
    ));
    assert!(matches!(
        compiled.route("location_get", json!([1])),
        Err(ToolError::InvalidArguments(_))
    ));
    assert_eq!(
        compiled.route("nope", json!({})).unwrap_err(),
        ToolError::UnknownTool("nope".into())
    );
}

#[test]
fn nodes_with_the_same_name_get_distinct_selectors() {
    let catalog = Catalog::default();
    catalog
        .register(node_location("1234567890", "iPhone", RankHints::default()))
        .unwrap();
    catalog
        .register(node_location("abcdef0123", "iPhone", RankHints::default()))
        .unwrap();
    catalog
        .register(entry(
            "builtin:location.get",
            "location.get",
            Source::Builtin,
        ))
        .unwrap();
    let compiled = catalog.compile();
    assert_eq!(names(&compiled), ["location_get"]);
    // The built-in is the representative: its description and schema are used.
    assert_eq!(compiled.tools[0].description, "location.get tool");
    assert_eq!(
        compiled.tools[0].parameters["properties"]["node"]["enum"],
        json!(["host", "iPhone (12345678)", "iPhone (abcdef01)"])
    );
    assert_eq!(
        routed(
            &compiled,
            "location_get",
            json!({"node": "iPhone (abcdef01)"})
        ),
        "node:abcdef0123:location.get"
    );
    assert_eq!(
        routed(&compiled, "location_get", json!({"node": "host"})),
        "builtin:location.get"
    );
}

#[test]
fn exclusive_slots_pick_one_owner_and_report_the_rest() {
    let catalog = Catalog::default();
    catalog.set_arbitration("memory.search", Arbitration::ExclusiveSlot { owner: None });
    catalog
        .register(entry("ext:lance:memory", "memory.search", ext("lance")))
        .unwrap();
    catalog
        .register(entry("ext:core:memory", "memory.search", ext("core")))
        .unwrap();
    catalog
        .register(entry("builtin:memory", "memory.search", Source::Builtin))
        .unwrap();

    // No owner configured: the built-in wins by source.
    let compiled = catalog.compile();
    assert_eq!(names(&compiled), ["memory_search"]);
    assert_eq!(
        compiled.lookup("memory_search").unwrap().kind,
        RouteKind::Direct
    );
    assert_eq!(
        routed(&compiled, "memory_search", json!({})),
        "builtin:memory"
    );
    assert_eq!(
        compiled.report.slot_conflicts,
        [SlotConflict {
            capability: "memory.search".into(),
            owner: "builtin:memory".into(),
            ignored: vec!["ext:core:memory".into(), "ext:lance:memory".into()],
        }]
    );

    // Priority beats source.
    let before = catalog.generation();
    catalog.set_hints(
        "ext:lance:memory",
        RankHints {
            priority: 3,
            ..RankHints::default()
        },
    );
    assert!(catalog.generation() > before);
    assert_eq!(
        routed(&catalog.compile(), "memory_search", json!({})),
        "ext:lance:memory"
    );

    // A configured owner wins.
    catalog.set_arbitration(
        "memory.search",
        Arbitration::ExclusiveSlot {
            owner: Some("ext:core:memory".into()),
        },
    );
    let compiled = catalog.compile();
    assert_eq!(
        routed(&compiled, "memory_search", json!({})),
        "ext:core:memory"
    );
    assert_eq!(compiled.report.slot_conflicts[0].owner, "ext:core:memory");

    // A configured owner that is missing exposes nothing: no silent fallback.
    catalog.set_arbitration(
        "memory.search",
        Arbitration::ExclusiveSlot {
            owner: Some("ext:gone:memory".into()),
        },
    );
    let compiled = catalog.compile();
    assert!(compiled.tools.is_empty());
    assert_eq!(
        compiled.report.missing_owners,
        [MissingOwner {
            capability: "memory.search".into(),
            owner: "ext:gone:memory".into(),
            ignored: vec![
                "builtin:memory".into(),
                "ext:core:memory".into(),
                "ext:lance:memory".into()
            ],
        }]
    );
}

#[test]
fn parallel_providers_are_tools_of_their_own() {
    let catalog = Catalog::default();
    catalog.set_arbitration("system.notify", Arbitration::Parallel);
    assert_eq!(catalog.arbitration("system.notify"), Arbitration::Parallel);
    assert_eq!(catalog.arbitration("location.get"), Arbitration::Ranked);
    catalog
        .register(entry(
            "node:n1:notify",
            "system.notify",
            node("n1", "Laptop"),
        ))
        .unwrap();
    catalog
        .register(entry(
            "node:n2:notify",
            "system.notify",
            node("n2", "Ana's iPhone"),
        ))
        .unwrap();
    catalog
        .register(entry("builtin:notify", "system.notify", Source::Builtin))
        .unwrap();
    catalog
        .register(entry("ext:slack:notify", "system.notify", ext("slack")))
        .unwrap();

    let compiled = catalog.compile();
    assert_eq!(
        names(&compiled),
        [
            "system_notify",
            "system_notify__ana_s_iphone",
            "system_notify__laptop",
            "system_notify__slack",
        ]
    );
    assert!(compiled.report.is_clean());
    assert_eq!(
        compiled.tools[2].description,
        "system.notify tool (on Laptop)"
    );
    assert_eq!(
        compiled.tools[3].description,
        "system.notify tool (from slack)"
    );
    assert_eq!(
        routed(&compiled, "system_notify__laptop", json!({"title": "hi"})),
        "node:n1:notify"
    );
    assert_eq!(
        compiled.original_name("system_notify__ana_s_iphone"),
        Some("system.notify")
    );
    assert_eq!(compiled.tools_for_capability("system.notify").len(), 4);

    // Two nodes with one name: the second by id is renamed with its id, and reported.
    catalog
        .register(entry(
            "node:n3:notify",
            "system.notify",
            node("n3zzzzzzzz", "Laptop"),
        ))
        .unwrap();
    let compiled = catalog.compile();
    assert!(names(&compiled).contains(&"system_notify__laptop__n3zzzzzz"));
    assert_eq!(
        compiled.report.collisions,
        [Collision {
            name: "system_notify__laptop".into(),
            winner: "node:n1:notify".into(),
            loser: "node:n3:notify".into(),
            resolution: CollisionResolution::Renamed {
                to: "system_notify__laptop__n3zzzzzz".into()
            },
        }]
    );
}

/// Every ordering of `items`, by Heap's algorithm.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    fn go<T: Clone>(k: usize, items: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
        if k <= 1 {
            out.push(items.clone());
            return;
        }
        for i in 0..k {
            go(k - 1, items, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            items.swap(j, k - 1);
        }
    }
    let mut items = items.to_vec();
    let mut out = Vec::new();
    go(items.len(), &mut items, &mut out);
    out
}

fn colliding_entries() -> Vec<CatalogEntry> {
    vec![
        entry("ext:zeta:search", "zeta.search", ext("zeta")).with_name("search"),
        entry("builtin:search", "web.search", Source::Builtin).with_name("search"),
        entry("ext:alpha:search", "alpha.search", ext("alpha")).with_name("search"),
        entry("node:n1:search", "files.search", node("n1", "Laptop")).with_name("search"),
        // `a.b` and `a_b` sanitize to the same name.
        entry("ext:alpha:a.b", "alpha.ab", ext("alpha")).with_name("a.b"),
        entry("builtin:a_b", "ab", Source::Builtin).with_name("a_b"),
    ]
}

#[test]
fn collisions_are_resolved_the_same_whatever_the_insertion_order() {
    let mut first: Option<(Vec<ToolSpec>, CatalogReport)> = None;
    let orders = permutations(&colliding_entries());
    assert_eq!(orders.len(), 720);
    for order in orders {
        let catalog = Catalog::default();
        for e in order {
            catalog.register(e).unwrap();
        }
        let compiled = catalog.compile();
        let got = (compiled.tools.clone(), compiled.report.clone());
        match &first {
            None => first = Some(got),
            Some(expected) => assert_eq!(&got, expected),
        }
    }
    let (tools, report) = first.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "a_b",
            "a_b__alpha",
            "search",
            "search__alpha",
            "search__n1",
            "search__zeta"
        ]
    );
    let renamed = |name: &str, winner: &str, loser: &str, to: &str| Collision {
        name: name.into(),
        winner: winner.into(),
        loser: loser.into(),
        resolution: CollisionResolution::Renamed { to: to.into() },
    };
    assert_eq!(
        report.collisions,
        [
            renamed("a_b", "builtin:a_b", "ext:alpha:a.b", "a_b__alpha"),
            renamed(
                "search",
                "builtin:search",
                "ext:alpha:search",
                "search__alpha"
            ),
            renamed(
                "search",
                "builtin:search",
                "ext:zeta:search",
                "search__zeta"
            ),
            renamed("search", "builtin:search", "node:n1:search", "search__n1"),
        ]
    );
}

#[test]
fn collision_losers_can_be_dropped_and_renames_avoid_wanted_names() {
    let catalog = Catalog::new(CatalogConfig {
        on_collision: CollisionPolicy::Drop,
    });
    for e in colliding_entries() {
        catalog.register(e).unwrap();
    }
    let compiled = catalog.compile();
    assert_eq!(names(&compiled), ["a_b", "search"]);
    assert_eq!(compiled.report.collisions.len(), 4);
    assert!(
        compiled
            .report
            .collisions
            .iter()
            .all(|c| c.resolution == CollisionResolution::Dropped)
    );
    assert_eq!(routed(&compiled, "a_b", json!({})), "builtin:a_b");

    // A rename never takes a name another tool wants, even one sorted later.
    let catalog = Catalog::default();
    catalog
        .register(entry("builtin:x", "x", Source::Builtin).with_name("t"))
        .unwrap();
    catalog
        .register(entry("ext:e:t", "y", ext("e")).with_name("t"))
        .unwrap();
    catalog
        .register(entry("ext:f:t__e", "z", ext("f")).with_name("t__e"))
        .unwrap();
    let compiled = catalog.compile();
    assert_eq!(names(&compiled), ["t", "t__e", "t__e_2"]);
    assert_eq!(routed(&compiled, "t__e", json!({})), "ext:f:t__e");
    assert_eq!(routed(&compiled, "t__e_2", json!({})), "ext:e:t");
}

#[test]
fn names_are_sanitized_and_mapped_back() {
    assert_eq!(sanitize_tool_name("location.get"), "location_get");
    assert_eq!(sanitize_tool_name("device.status"), "device_status");
    assert_eq!(sanitize_tool_name("café menü"), "caf__men_");
    assert_eq!(sanitize_tool_name("keep-this_1"), "keep-this_1");
    assert_eq!(sanitize_tool_name(""), "tool");
    assert_eq!(sanitize_tool_name(&"x".repeat(100)).len(), 64);
    for raw in ["a.b.c", "ü", "", "with space", &"é".repeat(80)] {
        assert!(is_valid_tool_name(&sanitize_tool_name(raw)), "{raw}");
    }
    assert!(!is_valid_tool_name("a.b"));
    assert!(!is_valid_tool_name(""));
    assert!(!is_valid_tool_name(&"a".repeat(65)));

    // Long names plus suffixes still fit.
    let catalog = Catalog::default();
    catalog.set_arbitration("long", Arbitration::Parallel);
    let long = format!("very.{}", "long".repeat(20));
    catalog
        .register(
            entry(
                "node:n:long",
                "long",
                node("n", "A device with a rather long name"),
            )
            .with_name(long.clone()),
        )
        .unwrap();
    catalog
        .register(entry("ext:e:long", "other", ext("e")).with_name(long.clone()))
        .unwrap();
    catalog
        .register(entry("builtin:long", "other2", Source::Builtin).with_name(long.clone()))
        .unwrap();
    let compiled = catalog.compile();
    assert_eq!(compiled.tools.len(), 3);
    for tool in &compiled.tools {
        assert!(is_valid_tool_name(&tool.name), "{}", tool.name);
        assert_eq!(compiled.original_name(&tool.name), Some(long.as_str()));
    }
    assert!(
        compiled
            .tools
            .iter()
            .any(|t| t.name.ends_with("__a_device_with_a_rather_l"))
    );
}

#[test]
fn a_node_that_goes_offline_leaves_the_catalog() {
    let catalog = Catalog::default();
    catalog.set_arbitration("system.notify", Arbitration::Parallel);
    for (id, name) in [("n1", "Laptop"), ("n2", "Phone")] {
        catalog
            .register(node_location(id, name, RankHints::default()))
            .unwrap();
        catalog
            .register(entry(
                &format!("node:{id}:notify"),
                "system.notify",
                node(id, name),
            ))
            .unwrap();
    }
    catalog
        .register(entry("builtin:time.now", "time.now", Source::Builtin))
        .unwrap();
    catalog.set_active_node(Some("n2"));
    let compiled = catalog.compile();
    assert_eq!(
        names(&compiled),
        [
            "location_get",
            "system_notify__laptop",
            "system_notify__phone",
            "time_now"
        ]
    );
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:n2:location.get"
    );

    let before = catalog.generation();
    assert_eq!(catalog.unregister_node("n2"), 2);
    assert!(catalog.generation() > before);
    assert_eq!(catalog.unregister_node("n2"), 0);

    // A list compiled before still routes, around the node that left.
    assert_eq!(
        routed(&compiled, "location_get", json!({})),
        "node:n1:location.get"
    );
    assert!(matches!(
        compiled.route("location_get", json!({"node": "Phone"})),
        Err(ToolError::Unavailable(_))
    ));
    assert!(matches!(
        compiled.route("system_notify__phone", json!({})),
        Err(ToolError::Unavailable(_))
    ));

    let compiled = catalog.compile();
    assert_eq!(
        names(&compiled),
        ["location_get", "system_notify__laptop", "time_now"]
    );
    assert_eq!(
        compiled.tools[0].parameters["properties"]["node"]["enum"],
        json!(["Laptop"])
    );

    // The last provider leaves: the tool goes, and old lists say it is unavailable.
    assert_eq!(
        catalog.unregister_source(&Source::Node {
            node_id: "n1".into(),
            display_name: "renamed since".into(),
        }),
        2
    );
    assert!(matches!(
        compiled.route("location_get", json!({})),
        Err(ToolError::Unavailable(_))
    ));
    assert_eq!(names(&catalog.compile()), ["time_now"]);
    assert!(catalog.unregister("builtin:time.now"));
    assert!(!catalog.unregister("builtin:time.now"));
    assert!(catalog.is_empty());
    assert!(catalog.compile().tools.is_empty());
}

#[test]
fn registration_validates_and_replaces_by_id() {
    let catalog = Catalog::default();
    let bad = |e: CatalogEntry| catalog.register(e).unwrap_err();
    assert!(matches!(
        bad(entry("", "x", Source::Builtin)),
        CatalogError::Invalid { .. }
    ));
    assert!(matches!(
        bad(entry("a", "x", Source::Builtin).with_name(" ")),
        CatalogError::Invalid { .. }
    ));
    assert!(matches!(
        bad(entry("a", " ", Source::Builtin)),
        CatalogError::Invalid { .. }
    ));
    assert!(matches!(
        bad(entry("a", "x", Source::Builtin).with_parameters(json!("nope"))),
        CatalogError::Invalid { .. }
    ));
    assert!(catalog.is_empty());

    assert!(
        !catalog
            .register(node_location("n1", "Old name", RankHints::default()))
            .unwrap()
    );
    assert!(
        catalog
            .register(node_location("n1", "New name", RankHints::default()))
            .unwrap()
    );
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog.entry_ids(), ["node:n1:location.get"]);
    assert_eq!(
        catalog.compile().tools[0].parameters["properties"]["node"]["enum"],
        json!(["New name"])
    );
}
