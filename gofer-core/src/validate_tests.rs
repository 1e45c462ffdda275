use super::*;
use crate::id::IdError;
use crate::task::{RequiredParentStatus::*, Task};

fn issues(p: &Pipeline) -> Vec<ValidationIssue> {
    p.validate().err().map(|e| e.issues).unwrap_or_default()
}

#[test]
fn valid_pipeline_passes() {
    let p = Pipeline::new("pipe", "P")
        .task(Task::new("aaa", "busybox"))
        .task(Task::new("bbb", "busybox").depends_on("aaa", Success));
    assert_eq!(p.validate(), Ok(()));
}

#[test]
fn reports_every_problem_with_field_and_task() {
    let p = Pipeline::new("p", "P")
        .parallelism(MAX_PARALLELISM + 1)
        .task(Task::new("ok_task", " "))
        .task(Task::new("ok_task", "busybox").variable("1BAD", "x"))
        .task(Task::new("bad id", "busybox").depends_on("ghost", Any))
        .task(
            Task::new("zero", "busybox")
                .timeout(Duration::ZERO)
                .memory_limit(1)
                .cpu_limit(0.0),
        )
        .task(Task::new("cmd", "busybox").command(Vec::<String>::new()))
        .task(Task::new("vars", "busybox").variable("K", "secret{{}}"));
    let err = p.validate().expect_err("invalid");
    let text = err.to_string();
    let got = err.issues;
    assert!(got.contains(&ValidationIssue::InvalidPipelineId {
        source: IdError::Length { len: 1 }
    }));
    assert!(got.contains(&ValidationIssue::Parallelism {
        value: MAX_PARALLELISM + 1
    }));
    assert!(got.contains(&ValidationIssue::EmptyImage {
        task: "ok_task".into()
    }));
    let dup = got
        .iter()
        .find(|i| matches!(i, ValidationIssue::DuplicateTask { .. }))
        .expect("the duplicate id is reported");
    assert!(
        matches!(dup, ValidationIssue::DuplicateTask { task, positions } if task == "ok_task" && positions.len() == 2)
    );
    assert!(dup.to_string().contains("(tasks["), "{dup}");
    assert!(got.contains(&ValidationIssue::InvalidVariableKey {
        task: "ok_task".into(),
        key: "1BAD".into()
    }));
    assert!(got.contains(&ValidationIssue::InvalidTaskId {
        task: "bad id".into(),
        source: IdError::Character { found: ' ' }
    }));
    assert!(got.contains(&ValidationIssue::UnknownParent {
        task: "bad id".into(),
        parent: "ghost".into()
    }));
    assert!(got.contains(&ValidationIssue::ZeroTimeout {
        task: "zero".into()
    }));
    assert!(got.iter().any(|i| matches!(
        i,
        ValidationIssue::InvalidResource {
            field: "memory_bytes",
            ..
        }
    )));
    assert!(got
        .iter()
        .any(|i| matches!(i, ValidationIssue::InvalidResource { field: "cpus", .. })));
    assert!(got.contains(&ValidationIssue::EmptyList {
        task: "cmd".into(),
        field: "command"
    }));
    assert!(got
        .iter()
        .any(|i| matches!(i, ValidationIssue::InvalidPlaceholder { key, .. } if key == "K")));
    assert!(text.contains("field `timeout` of task \"zero\""), "{text}");
    assert_eq!(got.len(), 12, "{got:#?}");
}

#[test]
fn empty_pipeline_is_rejected() {
    assert_eq!(
        issues(&Pipeline::new("pipe", "P")),
        vec![ValidationIssue::NoTasks]
    );
}

#[test]
fn cycle_is_named_in_order() {
    let p = Pipeline::new("pipe", "P")
        .task(Task::new("aaa", "i").depends_on("ccc", Any))
        .task(Task::new("bbb", "i").depends_on("aaa", Any))
        .task(Task::new("ccc", "i").depends_on("bbb", Any))
        .task(Task::new("ddd", "i").depends_on("ddd", Any));
    let got = issues(&p);
    assert!(
        got.contains(&ValidationIssue::Cycle {
            cycle: vec!["aaa".into(), "bbb".into(), "ccc".into(), "aaa".into()]
        }),
        "{got:?}"
    );
    assert!(got.contains(&ValidationIssue::Cycle {
        cycle: vec!["ddd".into(), "ddd".into()]
    }));
    assert_eq!(got.len(), 2);
}

#[test]
fn deep_chain_does_not_overflow() {
    let mut p = Pipeline::new("pipe", "P").task(Task::new("t00000", "i"));
    for i in 1..20_000 {
        p = p.task(Task::new(format!("t{i:05}"), "i").depends_on(format!("t{:05}", i - 1), Any));
    }
    assert_eq!(p.validate(), Ok(()));
}

#[test]
fn the_duplicate_id_issue_names_its_field() {
    let err = Pipeline::new("pipe", "P")
        .task(Task::new("same", "i"))
        .task(Task::new("same", "i"))
        .validate()
        .expect_err("duplicate");
    assert_eq!(err.issues.len(), 1);
    assert_eq!(err.issues[0].field(), "id");
    assert_eq!(err.issues[0].task(), Some("same"));
    assert!(
        err.issues[0]
            .to_string()
            .starts_with("field `id` of task \"same\""),
        "{}",
        err.issues[0]
    );
}

fn cpu_issue(cpus: f64) -> Option<ValidationIssue> {
    Pipeline::new("pipe", "P")
        .task(Task::new("cpu", "i").cpu_limit(cpus))
        .validate()
        .err()
        .map(|mut e| e.issues.remove(0))
}

#[test]
fn cpu_limits_below_the_granularity_or_above_the_maximum_are_refused_accurately() {
    for tiny in [1e-9, 0.001, 0.009_999] {
        let issue = cpu_issue(tiny).expect("tiny limit refused");
        assert!(
            matches!(issue, ValidationIssue::ResourceOutOfRange { field: "cpus", value, .. } if value == tiny),
            "{issue:?}"
        );
        assert_eq!(issue.field(), "resources.cpus");
        let text = issue.to_string();
        assert!(
            text.contains("below the smallest limit") && text.contains("0.01"),
            "{text}"
        );
    }
    let issue = cpu_issue(1e9).expect("huge limit refused");
    let text = issue.to_string();
    assert!(text.contains("exceeds the maximum of 1024"), "{text}");
    assert!(!text.contains("positive"), "{text}");
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let issue = cpu_issue(bad).expect("refused");
        assert!(issue.to_string().contains("positive number"), "{issue}");
    }
    for fine in [MIN_CPUS, 0.5, 1.0, 64.0, MAX_CPUS] {
        assert_eq!(cpu_issue(fine), None, "{fine}");
    }
}

#[test]
fn nul_bytes_are_refused_naming_the_field() {
    let p = Pipeline::new("pipe", "na\0me").description("d\0").task(
        Task::new("nul", "busy\0box")
            .description("x\0y")
            .command(["sh", "-c", "echo\0"])
            .entrypoint(["\0"])
            .variable("K", "v\0")
            .variable("K\0", "v"),
    );
    let err = p.validate().expect_err("NUL bytes");
    let fields: Vec<(Option<&str>, String)> =
        err.issues.iter().map(|i| (i.task(), i.field())).collect();
    for expected in [
        (None, "name"),
        (None, "description"),
        (Some("nul"), "image"),
        (Some("nul"), "description"),
        (Some("nul"), "command[2]"),
        (Some("nul"), "entrypoint[0]"),
        (Some("nul"), "variables[K]"),
        (Some("nul"), "variables"),
    ] {
        assert!(
            fields.contains(&(expected.0, expected.1.to_string())),
            "{expected:?} missing from {fields:?}"
        );
    }
    assert!(err.issues.iter().any(|i| matches!(
        i,
        ValidationIssue::NulByte { field, at: 4, .. } if field == "command[2]"
    )));
}

#[test]
fn arguments_values_and_totals_over_the_kernel_limits_are_refused() {
    let big = "x".repeat(MAX_ARG_BYTES + 1);
    let err = Pipeline::new("pipe", "P")
        .task(
            Task::new("big", "i")
                .command(["sh", big.as_str()])
                .variable("V", "y".repeat(128 * 1024)),
        )
        .validate()
        .expect_err("too long");
    let too_long: Vec<String> = err
        .issues
        .iter()
        .filter(|i| matches!(i, ValidationIssue::TooLong { .. }))
        .map(ValidationIssue::field)
        .collect();
    assert_eq!(
        too_long,
        vec!["command[1]".to_string(), "variables[V]".to_string()]
    );
    // Exactly at the limit is fine: an argument of MAX_ARG_BYTES, an entry
    // `V=...` of MAX_ARG_BYTES.
    let at_limit = Pipeline::new("pipe", "P").task(
        Task::new("big", "i")
            .command(["x".repeat(MAX_ARG_BYTES)])
            .variable("V", "y".repeat(MAX_ARG_BYTES - 2)),
    );
    assert_eq!(at_limit.validate(), Ok(()));
    // Many arguments each under the limit, over the total.
    let many: Vec<String> = (0..5).map(|_| "z".repeat(MAX_ARG_BYTES)).collect();
    let err = Pipeline::new("pipe", "P")
        .task(Task::new("many", "i").command(many))
        .validate()
        .expect_err("total");
    assert!(matches!(
        &err.issues[..],
        [ValidationIssue::TooLong { field, max: MAX_COMMAND_BYTES, .. }] if field == "command"
    ));
    let vars = (0..5).map(|i| (format!("K{i}"), "v".repeat(MAX_ARG_BYTES - 10)));
    let err = Pipeline::new("pipe", "P")
        .task(Task::new("vars", "i").variables(vars))
        .validate()
        .expect_err("total");
    assert!(matches!(
        &err.issues[..],
        [ValidationIssue::TooLong { field, max: MAX_ENVIRONMENT_BYTES, .. }] if field == "variables"
    ));
}

#[test]
fn a_huge_id_gives_a_short_error() {
    let huge = "é".repeat(500_000); // 1 MB
    let err = Pipeline::new(huge.clone(), "P")
        .task(Task::new(huge.clone(), "i").depends_on(huge.clone(), Any))
        .task(
            Task::new(huge.clone(), "i").variable(huge.clone(), format!("secret{{{{ {huge} }}}}")),
        )
        .validate()
        .expect_err("invalid");
    let text = err.to_string();
    assert!(text.len() < 4096, "{} bytes: {}", text.len(), &text[..200]);
    assert!(text.contains("… (1000000 bytes)"), "{text}");
    assert!(format!("{err:?}").len() < 8192, "Debug is bounded too");
    assert_eq!(
        err.pipeline.chars().count(),
        EXCERPT_CHARS + "… (1000000 bytes)".chars().count()
    );
}

#[test]
fn a_long_cycle_is_listed_in_part() {
    let n = 1000;
    let tasks = (0..n).map(|i| {
        Task::new(format!("t{i:04}"), "i").depends_on(format!("t{:04}", (i + 1) % n), Any)
    });
    let err = Pipeline::new("pipe", "P")
        .tasks(tasks)
        .validate()
        .expect_err("cycle");
    let text = err.to_string();
    assert!(text.contains("… (1000 tasks)"), "{text}");
    assert!(text.len() < 1024, "{text}");
    let ValidationIssue::Cycle { cycle } = &err.issues[0] else {
        panic!("{err}")
    };
    assert_eq!(cycle.len(), n + 1, "the issue keeps the whole cycle");
}

#[test]
fn excerpts_keep_short_text_and_cut_long_text_on_a_char_boundary() {
    use crate::validate_text::excerpt;
    assert_eq!(excerpt("short"), "short");
    let exact = "a".repeat(EXCERPT_CHARS);
    assert_eq!(excerpt(&exact), exact);
    let long = "ü".repeat(EXCERPT_CHARS + 1);
    assert_eq!(
        excerpt(&long),
        format!("{}… ({} bytes)", "ü".repeat(EXCERPT_CHARS), long.len())
    );
}

mod props {
    use super::*;
    use crate::task::{RequiredParentStatus, Task};
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = RequiredParentStatus> {
        prop_oneof![
            Just(RequiredParentStatus::Any),
            Just(RequiredParentStatus::Success),
            Just(RequiredParentStatus::Failure)
        ]
    }

    /// A DAG: task i may depend only on tasks with a smaller index.
    fn dag() -> impl Strategy<Value = Vec<Vec<(usize, RequiredParentStatus)>>> {
        (1usize..40).prop_flat_map(|n| {
            (0..n)
                .map(|i| proptest::collection::vec((0..i.max(1), status()), 0..(i.min(4) + 1)))
                .collect::<Vec<_>>()
                .prop_map(|mut v| {
                    v[0].clear();
                    v
                })
        })
    }

    fn build(prefix: &str, edges: &[Vec<(usize, RequiredParentStatus)>]) -> Vec<Task> {
        edges
            .iter()
            .enumerate()
            .map(|(i, parents)| {
                Task::new(format!("{prefix}{i:03}"), "busybox")
                    .variable("KEY_1", "value")
                    .depends_on_many(parents.iter().map(|(p, s)| (format!("{prefix}{p:03}"), *s)))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn every_generated_valid_pipeline_validates(edges in dag(), par in 0..=MAX_PARALLELISM) {
            let p = Pipeline::new("pipe", "P").parallelism(par).tasks(build("t", &edges));
            prop_assert_eq!(p.validate(), Ok(()));
        }

        #[test]
        fn every_generated_cycle_is_reported(
            edges in dag(),
            ring_len in 1usize..8,
            into_ring in proptest::collection::vec((0usize..40, 0usize..8), 0..10),
        ) {
            // A ring r0 <- r1 <- ... <- r(k-1) <- r0, plus DAG tasks that may depend on ring
            // tasks (never the reverse), so the ring is the only cycle.
            let mut tasks = build("t", &edges);
            for i in 0..ring_len {
                let parent = format!("r{:03}", (i + 1) % ring_len);
                tasks.push(Task::new(format!("r{i:03}"), "busybox").depends_on(parent, RequiredParentStatus::Any));
            }
            for (t, r) in into_ring {
                if let Some(task) = tasks.get_mut(t % edges.len()) {
                    task.depends_on.insert(format!("r{:03}", r % ring_len), RequiredParentStatus::Any);
                }
            }
            let err = Pipeline::new("pipe", "P").tasks(tasks).validate().expect_err("cycle");
            let cycles: Vec<_> = err.issues.iter().filter_map(|i| match i {
                ValidationIssue::Cycle { cycle } => Some(cycle.clone()),
                _ => None,
            }).collect();
            prop_assert_eq!(cycles.len(), 1, "{:?}", err.issues);
            let cycle = &cycles[0];
            prop_assert_eq!(cycle.len(), ring_len + 1);
            prop_assert_eq!(cycle.first(), cycle.last());
            let mut members: Vec<_> = cycle[..ring_len].to_vec();
            members.sort();
            let expected: Vec<_> = (0..ring_len).map(|i| format!("r{i:03}")).collect();
            prop_assert_eq!(members, expected);
            prop_assert_eq!(err.issues.len(), 1);
        }
    }

    /// Text as hosts may pass it: unicode, NUL bytes, placeholder syntax, huge.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "\\PC{0,12}",
            2 => "[a-z_]{3,8}",
            1 => any::<String>(),
            1 => "[a-z\\x00]{0,6}",
            1 => "(?i)(pipeline_secret|global_secret|secret|run_object|pipeline_object|x)[{}]{0,3}[ a-z{}\\x00]{0,8}[}]{0,3}",
            1 => (0usize..200_000, any::<char>()).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
        ]
    }

    fn list() -> impl Strategy<Value = Option<Vec<String>>> {
        proptest::option::of(proptest::collection::vec(text(), 0..4))
    }

    prop_compose! {
        fn arbitrary_task()(
            id in text(),
            image in text(),
            description in proptest::option::of(text()),
            command in list(),
            entrypoint in list(),
            variables in proptest::collection::btree_map(text(), text(), 0..4),
            parents in proptest::collection::btree_map(text(), status(), 0..3),
            timeout in proptest::option::of((any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))),
            memory in proptest::option::of(any::<u64>()),
            cpus in proptest::option::of(prop_oneof![any::<f64>(), 0.0..2048.0, Just(1e-9), Just(1e9), Just(f64::NAN)]),
        ) -> Task {
            let mut t = Task::new(id, image);
            t.description = description;
            t.command = command;
            t.entrypoint = entrypoint;
            t.variables = variables;
            t.depends_on = parents;
            t.timeout = timeout;
            t.resources.memory_bytes = memory;
            t.resources.cpus = cpus;
            t
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn arbitrary_input_never_panics_and_every_issue_names_a_field(
            id in text(),
            name in text(),
            description in proptest::option::of(text()),
            parallelism in any::<u32>(),
            tasks in proptest::collection::vec(arbitrary_task(), 0..5),
            copy_ids in any::<bool>(),
        ) {
            let mut tasks = tasks;
            if copy_ids && tasks.len() > 1 {
                // Make duplicates and references to existing tasks likely.
                let first = tasks[0].id.clone();
                tasks[1].id = first.clone();
                tasks[0].depends_on.insert(first, RequiredParentStatus::Any);
            }
            let mut p = Pipeline::new(id, name).parallelism(parallelism).tasks(tasks);
            p.description = description;
            if let Err(e) = p.validate() {
                prop_assert!(!e.issues.is_empty());
                for issue in &e.issues {
                    let field = issue.field();
                    prop_assert!(!field.is_empty(), "{:?}", issue);
                    let text = issue.to_string();
                    prop_assert!(text.contains(&format!("field `{field}`")), "{}", text);
                    // Bounded: excerpts, never the whole input.
                    prop_assert!(text.len() <= 2048, "{} bytes: {}", text.len(), text.chars().take(200).collect::<String>());
                }
                prop_assert!(e.pipeline.chars().count() <= EXCERPT_CHARS + 32);
            }
        }
    }
}
