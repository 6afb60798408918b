//! Dependency expressions: parsing, errors, cycle check, start and stop order.

use baton_policy::{
    check_cycles, start_order, stop_order, DepError, DepExpr, GroupView, ResourceView,
};

fn r(name: &str) -> DepExpr {
    DepExpr::Ref(name.to_string())
}

/// A group whose resources are `(name, depends_on)` pairs, in that order.
fn group(resources: &[(&str, &str)]) -> GroupView {
    let mut group = GroupView::new("web");
    group.resources = resources
        .iter()
        .map(|(name, deps)| {
            let mut resource = ResourceView::new(*name);
            if !deps.is_empty() {
                resource.depends_on = Some(DepExpr::parse(deps).expect("valid expression"));
            }
            resource
        })
        .collect();
    group
}

#[test]
fn parses_and_binding_tighter_than_or() {
    // Checks precedence: `a or b and c` is `a or (b and c)`.
    let expr = DepExpr::parse("a or b and c").unwrap();
    assert_eq!(
        expr,
        DepExpr::Or(vec![r("a"), DepExpr::And(vec![r("b"), r("c")])])
    );
}

#[test]
fn parses_parentheses_and_flattens() {
    // Checks grouping, flattening of same-kind chains and keyword case.
    let expr = DepExpr::parse("a AND (b or c) and d").unwrap();
    assert_eq!(
        expr,
        DepExpr::And(vec![r("a"), DepExpr::Or(vec![r("b"), r("c")]), r("d")])
    );
    assert_eq!(
        DepExpr::parse("(a and b) and c").unwrap(),
        DepExpr::parse("a and b and c").unwrap()
    );
    assert_eq!(DepExpr::parse("  ip-1.site_a  ").unwrap(), r("ip-1.site_a"));
}

#[test]
fn display_round_trips() {
    // Checks Display writes text that parses back to the same expression.
    for text in [
        "a",
        "a and b",
        "a or b",
        "a and (b or c)",
        "a or b and c",
        "(a or b) and (c or d)",
    ] {
        let expr = DepExpr::parse(text).unwrap();
        assert_eq!(DepExpr::parse(&expr.to_string()).unwrap(), expr, "{text}");
    }
    assert_eq!(
        DepExpr::parse("a and (b or c)").unwrap().to_string(),
        "a and (b or c)"
    );
}

#[test]
fn errors_name_position_and_expectation() {
    // Checks each error kind reports the column, what was expected and what was found.
    let cases: [(&str, usize, &str, &str); 6] = [
        ("", 1, "a resource name or '('", "end of input"),
        ("a and", 6, "a resource name or '('", "end of input"),
        ("a and (b or c", 14, "'and', 'or' or ')'", "end of input"),
        ("a b", 3, "'and', 'or' or end of input", "'b'"),
        ("a or )", 6, "a resource name or '('", "')'"),
        (
            "a & b",
            3,
            "a resource name, 'and', 'or', '(' or ')'",
            "'&'",
        ),
    ];
    for (text, column, expected, found) in cases {
        let error = DepExpr::parse(text).unwrap_err();
        let want = DepError {
            column,
            expected,
            found: found.to_string(),
        };
        assert_eq!(error, want, "{text:?}");
    }
    let message = DepExpr::parse("a and").unwrap_err().to_string();
    assert_eq!(
        message,
        "dependency expression at column 6: expected a resource name or '(', found end of input"
    );
}

#[test]
fn satisfaction_follows_and_or() {
    // Checks AND needs all operands and OR needs one.
    let expr = DepExpr::parse("disk and (ip1 or ip2)").unwrap();
    let online = |names: &'static [&'static str]| move |name: &str| names.contains(&name);
    assert!(expr.is_satisfied(&online(&["disk", "ip2"])));
    assert!(!expr.is_satisfied(&online(&["disk"])));
    assert!(!expr.is_satisfied(&online(&["ip1", "ip2"])));
}

#[test]
fn cycle_check_names_the_cycle() {
    // Checks a two-resource cycle is reported in dependency direction.
    let error = check_cycles(&group(&[("a", "b"), ("b", "a"), ("c", "")])).unwrap_err();
    assert_eq!(error.cycle, ["a", "b", "a"]);
    assert_eq!(
        error.to_string(),
        "dependency cycle in group web: a -> b -> a; remove one of these dependencies"
    );
}

#[test]
fn cycle_check_finds_longer_and_self_cycles() {
    // Checks a cycle through an OR branch and a resource depending on itself.
    let error = check_cycles(&group(&[
        ("x", ""),
        ("a", "x or b"),
        ("b", "c"),
        ("c", "a"),
    ]));
    assert_eq!(error.unwrap_err().cycle, ["a", "b", "c", "a"]);
    assert_eq!(
        check_cycles(&group(&[("a", "a")])).unwrap_err().cycle,
        ["a", "a"]
    );
}

#[test]
fn cycle_check_accepts_dags_and_unknown_names() {
    // Checks a diamond is fine and names outside the group are not edges.
    let diamond = group(&[("d", "b and c"), ("b", "a"), ("c", "a"), ("a", "outside")]);
    assert_eq!(check_cycles(&diamond), Ok(()));
}

#[test]
fn start_order_respects_and_and_or() {
    // Checks AND deps come first, one OR alternative suffices, config order breaks ties.
    let web = group(&[
        ("app", "name and disk"),
        ("name", "ip1 or ip2"),
        ("ip1", ""),
        ("ip2", ""),
        ("disk", ""),
    ]);
    assert_eq!(start_order(&web), ["ip1", "ip2", "disk", "name", "app"]);
    assert_eq!(stop_order(&web), ["app", "name", "disk", "ip2", "ip1"]);
}

#[test]
fn start_order_leaves_out_unsatisfiable_and_stop_order_keeps_them() {
    // Checks cycles and unknown names are never started but are always stopped.
    let web = group(&[("ip", ""), ("a", "b"), ("b", "a"), ("c", "missing")]);
    assert_eq!(start_order(&web), ["ip"]);
    assert_eq!(stop_order(&web), ["a", "b", "c", "ip"]);
}

#[test]
fn or_is_satisfied_by_a_later_alternative() {
    // Checks a resource waits until any OR alternative, even one declared after it, starts.
    let web = group(&[("name", "ip-a or ip-b"), ("ip-a", "missing"), ("ip-b", "")]);
    assert_eq!(start_order(&web), ["ip-b", "name"]);
}

#[test]
fn scenario_files_read_expressions_as_strings() {
    // Checks serde reads a dependency string and rejects a bad one with its position.
    let input = baton_policy::scenario::parse(
        "now_ms = 0\n[[groups]]\nname = \"g\"\n[[groups.resources]]\nname = \"a\"\n\
         depends_on = \"b or (c\"\n",
    );
    let message = input.unwrap_err().to_string();
    assert!(message.contains("column 8"), "{message}");
}
