//! Resource dependencies inside a group: the expression language
//! (`"a and (b or c)"`), its cycle check, and the start and stop orders a node
//! follows when it brings a group online or offline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::input::GroupView;

/// A dependency expression. `and` binds tighter than `or`, as in logic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DepExpr {
    /// Needs this resource online.
    Ref(String),
    /// Needs every operand.
    And(Vec<DepExpr>),
    /// Needs at least one operand (e.g. one IP address per subnet).
    Or(Vec<DepExpr>),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dependency expression at column {column}: expected {expected}, found {found}")]
pub struct DepError {
    /// 1-based character position of the offending token.
    pub column: usize,
    pub expected: &'static str,
    pub found: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "dependency cycle in group {group}: {}; remove one of these dependencies",
    cycle.join(" -> ")
)]
pub struct CycleError {
    pub group: String,
    /// The resources on the cycle, the first repeated at the end.
    pub cycle: Vec<String>,
}

impl DepExpr {
    pub fn parse(text: &str) -> Result<DepExpr, DepError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, index: 0 };
        let expr = parser.parse_or()?;
        parser.expect_end()?;
        Ok(expr)
    }

    /// Whether the expression holds when `is_online` says which resources run.
    pub fn is_satisfied(&self, is_online: &dyn Fn(&str) -> bool) -> bool {
        match self {
            DepExpr::Ref(name) => is_online(name),
            DepExpr::And(operands) => operands.iter().all(|e| e.is_satisfied(is_online)),
            DepExpr::Or(operands) => operands.iter().any(|e| e.is_satisfied(is_online)),
        }
    }

    /// Every resource named, in order of appearance.
    pub fn references(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.collect_references(&mut names);
        names
    }

    fn collect_references<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            DepExpr::Ref(name) => names.push(name),
            DepExpr::And(operands) | DepExpr::Or(operands) => {
                operands.iter().for_each(|e| e.collect_references(names))
            }
        }
    }
}

impl fmt::Display for DepExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepExpr::Ref(name) => f.write_str(name),
            DepExpr::And(operands) => {
                for (index, operand) in operands.iter().enumerate() {
                    if index > 0 {
                        f.write_str(" and ")?;
                    }
                    // Only an `or` inside an `and` needs parentheses.
                    match operand {
                        DepExpr::Or(_) => write!(f, "({operand})")?,
                        _ => write!(f, "{operand}")?,
                    }
                }
                Ok(())
            }
            DepExpr::Or(operands) => {
                let texts: Vec<String> = operands.iter().map(|e| e.to_string()).collect();
                f.write_str(&texts.join(" or "))
            }
        }
    }
}

impl Serialize for DepExpr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DepExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DepExpr::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Name(String),
    And,
    Or,
    Open,
    Close,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Name(name) => format!("'{name}'"),
            Token::And => "'and'".to_string(),
            Token::Or => "'or'".to_string(),
            Token::Open => "'('".to_string(),
            Token::Close => "')'".to_string(),
            Token::End => "end of input".to_string(),
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Splits the text into tokens paired with their 1-based column.
fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, DepError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let column = index + 1;
        if c.is_whitespace() {
            index += 1;
        } else if c == '(' || c == ')' {
            tokens.push((if c == '(' { Token::Open } else { Token::Close }, column));
            index += 1;
        } else if is_name_char(c) {
            let start = index;
            while index < chars.len() && is_name_char(chars[index]) {
                index += 1;
            }
            let word: String = chars[start..index].iter().collect();
            tokens.push((keyword_or_name(word), column));
        } else {
            return Err(DepError {
                column,
                expected: "a resource name, 'and', 'or', '(' or ')'",
                found: format!("'{c}'"),
            });
        }
    }
    tokens.push((Token::End, chars.len() + 1));
    Ok(tokens)
}

fn keyword_or_name(word: String) -> Token {
    match word.to_ascii_lowercase().as_str() {
        "and" => Token::And,
        "or" => Token::Or,
        _ => Token::Name(word),
    }
}

/// Recursive descent over `or := and ('or' and)*`, `and := atom ('and' atom)*`,
/// `atom := name | '(' or ')'`.
struct Parser {
    tokens: Vec<(Token, usize)>,
    index: usize,
}

impl Parser {
    fn peek(&self) -> &(Token, usize) {
        // The tokenizer always ends the list with `End`, which is never consumed.
        &self.tokens[self.index.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> (Token, usize) {
        let token = self.peek().clone();
        if token.0 != Token::End {
            self.index += 1;
        }
        token
    }

    fn error(&self, expected: &'static str) -> DepError {
        let (token, column) = self.peek();
        DepError {
            column: *column,
            expected,
            found: token.describe(),
        }
    }

    fn parse_or(&mut self) -> Result<DepExpr, DepError> {
        let mut operands = vec![self.parse_and()?];
        while self.peek().0 == Token::Or {
            self.advance();
            operands.push(self.parse_and()?);
        }
        Ok(flatten(operands, Junction::Or))
    }

    fn parse_and(&mut self) -> Result<DepExpr, DepError> {
        let mut operands = vec![self.parse_atom()?];
        while self.peek().0 == Token::And {
            self.advance();
            operands.push(self.parse_atom()?);
        }
        Ok(flatten(operands, Junction::And))
    }

    fn parse_atom(&mut self) -> Result<DepExpr, DepError> {
        match self.peek().0.clone() {
            Token::Name(name) => {
                self.advance();
                Ok(DepExpr::Ref(name))
            }
            Token::Open => {
                self.advance();
                let inner = self.parse_or()?;
                if self.peek().0 != Token::Close {
                    return Err(self.error("'and', 'or' or ')'"));
                }
                self.advance();
                Ok(inner)
            }
            _ => Err(self.error("a resource name or '('")),
        }
    }

    fn expect_end(&self) -> Result<(), DepError> {
        match self.peek().0 {
            Token::End => Ok(()),
            _ => Err(self.error("'and', 'or' or end of input")),
        }
    }
}

/// Builds `And`/`Or` with nested operands of the same kind lifted, so
/// `(a and b) and c` and `a and b and c` are the same value.
fn flatten(operands: Vec<DepExpr>, kind: Junction) -> DepExpr {
    if operands.len() == 1 {
        // Checked just above: exactly one operand.
        return operands.into_iter().next().expect("one operand");
    }
    let mut flat = Vec::with_capacity(operands.len());
    for operand in operands {
        match (operand, kind) {
            (DepExpr::And(inner), Junction::And) | (DepExpr::Or(inner), Junction::Or) => {
                flat.extend(inner)
            }
            (other, _) => flat.push(other),
        }
    }
    match kind {
        Junction::And => DepExpr::And(flat),
        Junction::Or => DepExpr::Or(flat),
    }
}

#[derive(Clone, Copy)]
enum Junction {
    And,
    Or,
}

/// Rejects a group whose resources depend on each other in a circle.
/// References to resources outside the group are not edges here.
pub fn check_cycles(group: &GroupView) -> Result<(), CycleError> {
    let edges: BTreeMap<&str, Vec<&str>> = dependency_edges(group);
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for resource in &group.resources {
        let mut path = Vec::new();
        if let Some(cycle) = find_cycle(&resource.name, &edges, &mut path, &mut done) {
            return Err(CycleError {
                group: group.name.clone(),
                cycle,
            });
        }
    }
    Ok(())
}

fn dependency_edges(group: &GroupView) -> BTreeMap<&str, Vec<&str>> {
    let known: BTreeSet<&str> = group.resources.iter().map(|r| r.name.as_str()).collect();
    group
        .resources
        .iter()
        .map(|resource| {
            let targets = resource.depends_on.as_ref().map_or_else(Vec::new, |expr| {
                expr.references()
                    .into_iter()
                    .filter(|name| known.contains(name))
                    .collect()
            });
            (resource.name.as_str(), targets)
        })
        .collect()
}

/// Depth-first search; `path` is the current chain, `done` the nodes proven acyclic.
fn find_cycle<'a>(
    name: &'a str,
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<String>> {
    if done.contains(name) {
        return None;
    }
    if let Some(start) = path.iter().position(|on_path| *on_path == name) {
        let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
        cycle.push(name.to_string());
        return Some(cycle);
    }
    path.push(name);
    for next in edges.get(name).map(Vec::as_slice).unwrap_or_default() {
        if let Some(cycle) = find_cycle(next, edges, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(name);
    None
}

/// The order to bring resources online: a resource comes after all of its AND
/// dependencies and after at least one alternative of each OR. Ties keep the
/// configuration order. Resources whose dependencies can never be met (a cycle,
/// or a name not in the group) are left out: they must not be started, and
/// `check_cycles` says why.
pub fn start_order(group: &GroupView) -> Vec<String> {
    let mut started: BTreeSet<&str> = BTreeSet::new();
    let mut order: Vec<String> = Vec::with_capacity(group.resources.len());
    loop {
        let before = order.len();
        for resource in &group.resources {
            if started.contains(resource.name.as_str()) {
                continue;
            }
            let ready = resource
                .depends_on
                .as_ref()
                .is_none_or(|expr| expr.is_satisfied(&|name| started.contains(name)));
            if ready {
                started.insert(&resource.name);
                order.push(resource.name.clone());
            }
        }
        if order.len() == before {
            return order;
        }
    }
}

/// The order to take resources offline: dependents first (the reverse of
/// `start_order`), preceded by any resource `start_order` leaves out, because
/// stopping must cover every resource.
pub fn stop_order(group: &GroupView) -> Vec<String> {
    let started = start_order(group);
    let in_order: BTreeSet<&str> = started.iter().map(String::as_str).collect();
    let mut order: Vec<String> = group
        .resources
        .iter()
        .filter(|r| !in_order.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect();
    order.extend(started.iter().rev().cloned());
    order
}
