//! Label and field selectors: the string grammars of apimachinery's `labels.Parse` and `fields.ParseSelector` with
//! their error texts, matching against an object's labels or fields, the conversion of an API `LabelSelector`
//! (`matchLabels` + `matchExpressions`), and reading a field-selector label from an object's JSON the way
//! Kubernetes' per-resource field sets do. Pure: no IO; which field labels a resource supports is the caller's
//! business (`ResourceInfo::supports_field_label`).

use crate::errors::quote;
use crate::k8s::apimachinery::pkg::apis::meta::v1 as metav1;
use crate::validation::{is_qualified_name, is_valid_label_value};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

// ---------------------------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------------------------

/// A label requirement's operator (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOp {
    /// `k in (a,b)`: the label exists and has one of the values.
    In,
    /// `k notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `k=v`.
    Equals,
    /// `k==v` (same meaning as `=`, kept apart so the selector prints back as written).
    DoubleEquals,
    /// `k!=v`: the label is absent or has another value.
    NotEquals,
    /// `k`: the label exists.
    Exists,
    /// `!k`: the label is absent.
    DoesNotExist,
    /// `k>n`: the label is an integer greater than `n`.
    GreaterThan,
    /// `k<n`: the label is an integer less than `n`.
    LessThan,
}

impl LabelOp {
    /// The operator's name in `selection.Operator` (what `NotSupported` errors list).
    fn as_str(self) -> &'static str {
        match self {
            LabelOp::In => "in",
            LabelOp::NotIn => "notin",
            LabelOp::Equals => "=",
            LabelOp::DoubleEquals => "==",
            LabelOp::NotEquals => "!=",
            LabelOp::Exists => "exists",
            LabelOp::DoesNotExist => "!",
            LabelOp::GreaterThan => "gt",
            LabelOp::LessThan => "lt",
        }
    }
}

/// The binary operators in the order apimachinery lists them in its "expected:" message.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

/// One requirement of a label selector: `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key (validated as a qualified name).
    pub key: String,
    /// How the label relates to `values`.
    pub op: LabelOp,
    /// The values: one for `=`/`==`/`!=`/`>`/`<`, a sorted set for `in`/`notin`, none for `exists`/`!`.
    pub values: Vec<String>,
}

impl Requirement {
    /// `NewRequirement`: validates the key, the operator's arity and every value, with apimachinery's field paths
    /// (`key`, `values`, `values[i]`, `values[i][key]`) and its aggregate error format.
    pub fn new(key: &str, op: LabelOp, values: Vec<String>) -> Result<Self, String> {
        let mut errs: Vec<String> = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!("key: Invalid value: {}: {}", quote(key), key_errs.join("; ")));
        }
        let values_json = || serde_json::to_string(&values).unwrap_or_default();
        match op {
            LabelOp::In | LabelOp::NotIn if values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                values_json()
            )),
            LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::NotEquals if values.len() != 1 => errs.push(format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                values_json()
            )),
            LabelOp::Exists | LabelOp::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                values_json()
            )),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        values_json()
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            quote(v)
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    quote(v),
                    value_errs.join("; ")
                ));
            }
        }
        if errs.is_empty() {
            Ok(Self {
                key: key.to_string(),
                op,
                values,
            })
        } else {
            Err(aggregate(errs))
        }
    }

    /// Whether `labels` satisfy this requirement (`Requirement.Matches`).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let have = labels.get(&self.key);
        match self.op {
            LabelOp::In | LabelOp::Equals | LabelOp::DoubleEquals => have.is_some_and(|v| self.values.contains(v)),
            LabelOp::NotIn | LabelOp::NotEquals => have.is_none_or(|v| !self.values.contains(v)),
            LabelOp::Exists => have.is_some(),
            LabelOp::DoesNotExist => have.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let [limit] = self.values.as_slice() else {
                    return false;
                };
                let (Some(have), Ok(limit)) = (have.and_then(|v| v.parse::<i64>().ok()), limit.parse::<i64>()) else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    have > limit
                } else {
                    have < limit
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// `Requirement.String`: `!k`, `k`, `k=v`, `k in (a,b)` with set values sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut values = self.values.clone();
        values.sort();
        let joined = values.join(",");
        match self.op {
            LabelOp::Exists => write!(f, "{}", self.key),
            LabelOp::DoesNotExist => write!(f, "!{}", self.key),
            LabelOp::In => write!(f, "{} in ({joined})", self.key),
            LabelOp::NotIn => write!(f, "{} notin ({joined})", self.key),
            LabelOp::Equals => write!(f, "{}={joined}", self.key),
            LabelOp::DoubleEquals => write!(f, "{}=={joined}", self.key),
            LabelOp::NotEquals => write!(f, "{}!={joined}", self.key),
            LabelOp::GreaterThan => write!(f, "{}>{joined}", self.key),
            LabelOp::LessThan => write!(f, "{}<{joined}", self.key),
        }
    }
}

/// apimachinery's aggregate error: one message as is, several deduplicated inside `[a, b]`.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen.remove(0)
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// A parsed label selector: the AND of its requirements, sorted by key. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, sorted by key as `labels.Parse` leaves them.
    pub requirements: Vec<Requirement>,
}

/// A lexer token of the label selector grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

impl Token {
    /// The literal as apimachinery quotes it in "found '…'" (empty at the end of the string).
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) => s,
            Token::EndOfString => "",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::DoesNotExist => "!",
            Token::DoubleEquals => "==",
            Token::Equals => "=",
            Token::GreaterThan => ">",
            Token::In => "in",
            Token::LessThan => "<",
            Token::NotEquals => "!=",
            Token::NotIn => "notin",
            Token::OpenPar => "(",
        }
    }
}

/// Whitespace as the label lexer sees it (`isWhitespace`): not Unicode spaces.
fn is_selector_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Characters that start an operator token (`isSpecialSymbol`).
fn is_special_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a label selector into tokens; always ends with `EndOfString`. Operators are matched longest first
/// (`!=`, `==`), identifiers run to the next whitespace or operator character, and `in`/`notin` are keywords.
fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_selector_whitespace(c) {
            i += 1;
        } else if is_special_symbol(c) {
            let doubled = chars.get(i + 1) == Some(&'=');
            let (token, len) = match c {
                '!' if doubled => (Token::NotEquals, 2),
                '=' if doubled => (Token::DoubleEquals, 2),
                '!' => (Token::DoesNotExist, 1),
                '=' => (Token::Equals, 1),
                '(' => (Token::OpenPar, 1),
                ')' => (Token::ClosedPar, 1),
                ',' => (Token::Comma, 1),
                '>' => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            tokens.push(token);
            i += len;
        } else {
            let start = i;
            while i < chars.len() && !is_selector_whitespace(chars[i]) && !is_special_symbol(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word),
            });
        }
    }
    tokens.push(Token::EndOfString);
    tokens
}

/// Where the parser is: `in`/`notin` are operators after a key but plain identifiers where values are expected
/// (so `x in (in)` and a key named `in` both parse, as in apimachinery).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// A recursive-descent parser over the token list.
struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn token_at(&self, position: usize, context: Context) -> Token {
        let token = self.tokens.get(position).cloned().unwrap_or(Token::EndOfString);
        match token {
            Token::In if context == Context::Values => Token::Identifier("in".into()),
            Token::NotIn if context == Context::Values => Token::Identifier("notin".into()),
            t => t,
        }
    }

    fn lookahead(&self, context: Context) -> Token {
        self.token_at(self.position, context)
    }

    fn consume(&mut self, context: Context) -> Token {
        let token = self.token_at(self.position, context);
        self.position += 1;
        token
    }

    /// `<selector> ::= <requirement> | <requirement> "," <selector>`, or nothing at all.
    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.lookahead(Context::Values) {
                Token::Identifier(_) | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.consume(Context::Values) {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let next = self.lookahead(Context::Values);
                            if !matches!(next, Token::Identifier(_) | Token::DoesNotExist) {
                                return Err(format!("found '{}', expected: identifier after ','", next.literal()));
                            }
                        }
                        t => return Err(format!("found '{}', expected: ',' or 'end of string'", t.literal())),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (LabelOp::Exists | LabelOp::DoesNotExist)) = op {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            LabelOp::In | LabelOp::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        // A set, as `sets.String.List()` returns it: sorted and without duplicates.
        Requirement::new(&key, op, values.into_iter().collect())
    }

    /// `[!] KEY`, inferring `exists` when the key stands alone.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOp>), String> {
        let mut op = None;
        let mut token = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            op = Some(LabelOp::DoesNotExist);
            token = self.consume(Context::Values);
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        let key_errs = is_qualified_name(&key);
        if !key_errs.is_empty() {
            // apimachinery validates here against its nil root path, which prints as "<nil>".
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                quote(&key),
                key_errs.join("; ")
            ));
        }
        if matches!(self.lookahead(Context::Values), Token::EndOfString | Token::Comma) && op.is_none() {
            op = Some(LabelOp::Exists);
        }
        Ok((key, op))
    }

    fn parse_operator(&mut self) -> Result<LabelOp, String> {
        Ok(match self.consume(Context::KeyAndOperator) {
            Token::In => LabelOp::In,
            Token::Equals => LabelOp::Equals,
            Token::DoubleEquals => LabelOp::DoubleEquals,
            Token::GreaterThan => LabelOp::GreaterThan,
            Token::LessThan => LabelOp::LessThan,
            Token::NotIn => LabelOp::NotIn,
            Token::NotEquals => LabelOp::NotEquals,
            t => return Err(format!("found '{}', expected: {BINARY_OPERATORS}", t.literal())),
        })
    }

    /// `"(" VALUE { "," VALUE } ")"`, where empty values are allowed (`()`, `(a,)`, `(,a)`, `(a,,b)`).
    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let open = self.consume(Context::Values);
        if open != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", open.literal()));
        }
        match self.lookahead(Context::Values) {
            first @ (Token::Identifier(_) | Token::Comma) => {
                let values = self.parse_identifiers_list()?;
                if self.consume(Context::Values) != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", first.literal()));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            t => Err(format!("found '{}', expected: ',', ')' or identifier", t.literal())),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            match self.consume(Context::Values) {
                Token::Identifier(v) => {
                    values.insert(v);
                    match self.lookahead(Context::Values) {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new()); // "(,"
                    }
                    match self.lookahead(Context::Values) {
                        Token::ClosedPar => {
                            values.insert(String::new()); // ",)"
                            return Ok(values);
                        }
                        Token::Comma => {
                            values.insert(String::new()); // ",,"
                        }
                        _ => {}
                    }
                }
                t => return Err(format!("found '{}', expected: ',', or identifier", t.literal())),
            }
        }
    }

    /// The single value of `=`, `==`, `!=`, `>`, `<`; nothing before `,` or the end means the empty value.
    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(self.lookahead(Context::Values), Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.consume(Context::Values) {
            Token::Identifier(v) => Ok(BTreeSet::from([v])),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

impl LabelSelector {
    /// Parses the string form as `labels.Parse` does (`app=nginx,tier in (web,api),!canary,n>3`). The empty
    /// string (or only whitespace) selects everything. Errors are apimachinery's texts, e.g.
    /// `unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parser = Parser {
            tokens: lex(s),
            position: 0,
        };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// `metav1.LabelSelectorAsSelector`: `matchLabels` become `=` requirements, `matchExpressions` their
    /// operators (`In`, `NotIn`, `Exists`, `DoesNotExist`); an empty selector selects everything.
    pub fn from_api(selector: &metav1::LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(k, LabelOp::Equals, vec![v.clone()])?);
        }
        for e in selector.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => LabelOp::In,
                "NotIn" => LabelOp::NotIn,
                "Exists" => LabelOp::Exists,
                "DoesNotExist" => LabelOp::DoesNotExist,
                other => return Err(format!("{} is not a valid label selector operator", quote(other))),
            };
            requirements.push(Requirement::new(&e.key, op, e.values.clone().unwrap_or_default())?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The value a selector pins `key` to, when it requires exactly one (`RequiresExactMatch`).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.op, r.values.as_slice()) {
            (LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical form, as `Selector.String()` prints it: requirements joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LabelOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------------------------

/// A field requirement's operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldOp {
    /// `f=v` or `f==v`.
    Equals,
    /// `f!=v`.
    NotEquals,
}

/// One field requirement: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, as written (not trimmed: Kubernetes rejects `" metadata.name"` as an unknown label).
    pub field: String,
    /// Equality or inequality.
    pub op: FieldOp,
    /// The value, unescaped.
    pub value: String,
}

/// A parsed field selector: the AND of its requirements, in the sorted order of their terms. Empty selects
/// everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    /// The requirements.
    pub requirements: Vec<FieldRequirement>,
}

/// `splitTerms`: splits on commas not escaped by a backslash; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `splitTerm`: the first `!=`, `==` or `=` (tried in that order at each position) splits field from value.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if let Some(v) = rest.strip_prefix("!=") {
            return Some((&term[..i], FieldOp::NotEquals, v));
        }
        if let Some(v) = rest.strip_prefix("==") {
            return Some((&term[..i], FieldOp::Equals, v));
        }
        if let Some(v) = rest.strip_prefix('=') {
            return Some((&term[..i], FieldOp::Equals, v));
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; a bare `,` or `=` is an error.
pub fn unescape_field_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(format!("invalid field selector: invalid escape sequence: \\{other}"));
                }
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Go prints the rune with %v, that is as its number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            other => out.push(other),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".into());
    }
    Ok(out)
}

/// `fields.EscapeValue`: the inverse of [`unescape_field_value`].
pub fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FieldSelector {
    /// Parses `a=b,c!=d` (`==` is `=`) as `fields.ParseSelector` does, backslash escapes included; an empty
    /// string selects everything. Error: `invalid selector: '<all>'; can't understand '<term>'`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, op, value)) = split_term(term) else {
                return Err(format!("invalid selector: '{s}'; can't understand '{term}'"));
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape_field_value(value)?,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the fields read by `get` satisfy every requirement; a missing field compares as "".
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = get(&r.field).unwrap_or_default();
            match r.op {
                FieldOp::Equals => have == r.value,
                FieldOp::NotEquals => have != r.value,
            }
        })
    }

    /// The value a selector pins `field` to with `=` (`RequiresExactMatch`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// `f=v,g!=w` with values escaped, as `Selector.String()` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", r.field, escape_field_value(&r.value))?;
        }
        Ok(())
    }
}

/// A JSON scalar as a field set renders it; maps, lists and null have no field value.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a dotted path (`spec.nodeName`) of an object.
fn dotted(obj: &Value, path: &str) -> Option<String> {
    path.split('.').try_fold(obj, |v, k| v.get(k)).and_then(scalar)
}

/// A boolean field that Kubernetes' field sets render with `strconv.FormatBool` (absent = "false").
fn bool_field(obj: &Value, path: &str) -> String {
    let set = path
        .split('.')
        .try_fold(obj, |v, k| v.get(k))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    set.to_string()
}

/// Reads field-selector label `label` from an object's JSON, as Kubernetes' per-resource field sets do
/// (`pod.ToSelectableFields`, `node.NodeToSelectableFields`, `event.ToSelectableFields`, …):
///
/// - Pod `spec.hostNetwork` and Node `spec.unschedulable` are `"true"`/`"false"` even when unset;
/// - Pod `status.podIP` is the first entry of `status.podIPs` (falling back to `status.podIP`);
/// - core Event `source` is `source.component`; the events.k8s.io names (`regarding.*`, `reportingController`,
///   `deprecatedSource`) and the core ones (`involvedObject.*`, `reportingComponent`, `source`) are read from
///   whichever form the object is stored in;
/// - a Namespace's legacy `name` label is `metadata.name`;
/// - anything else is the dotted path, for strings, booleans and numbers.
///
/// `None` means the object has no such field; selectors compare it as "".
pub fn field_value(obj: &Value, label: &str) -> Option<String> {
    let is_events_v1 = obj.get("regarding").is_some() || obj.get("reportingController").is_some();
    match label {
        "spec.hostNetwork" | "spec.unschedulable" => Some(bool_field(obj, label)),
        // Namespaces keep the legacy `name` label beside `metadata.name`.
        "name" if obj.get("kind").and_then(Value::as_str) == Some("Namespace") => dotted(obj, "metadata.name"),
        "status.podIP" => obj
            .pointer("/status/podIPs/0/ip")
            .and_then(scalar)
            .or_else(|| dotted(obj, "status.podIP")),
        "source" if is_events_v1 => dotted(obj, "deprecatedSource.component"),
        "source" | "deprecatedSource" => {
            dotted(obj, "source.component").or_else(|| dotted(obj, "deprecatedSource.component"))
        }
        "reportingComponent" | "reportingController" => {
            dotted(obj, "reportingComponent").or_else(|| dotted(obj, "reportingController"))
        }
        _ => {
            if let Some(field) = label.strip_prefix("involvedObject.") {
                dotted(obj, label).or_else(|| dotted(obj, &format!("regarding.{field}")))
            } else if let Some(field) = label.strip_prefix("regarding.") {
                dotted(obj, label).or_else(|| dotted(obj, &format!("involvedObject.{field}")))
            } else {
                dotted(obj, label)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).expect_err(s)
    }

    #[test]
    fn empty_selects_everything() {
        for s in ["", "   ", "\t\n"] {
            let sel = parse(s);
            assert!(sel.is_empty());
            assert!(sel.matches(&labels(&[("a", "b")])));
            assert!(sel.matches(&labels(&[])));
            assert_eq!(sel.to_string(), "");
        }
    }

    #[test]
    fn every_operator_parses_and_prints_canonically() {
        let cases = [
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x = a", "x=a"),
            ("x in (b,a)", "x in (a,b)"),
            ("x notin ( a , b )", "x notin (a,b)"),
            ("x", "x"),
            ("!x", "!x"),
            ("  !  x  ", "!x"),
            ("x>1", "x>1"),
            ("x<10", "x<10"),
            ("x=", "x="),
            ("x in ()", "x in ()"),
            ("x in (a,)", "x in (,a)"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("x in (a,a)", "x in (a)"),
            ("z=1,a=2,m", "a=2,m,z=1"),
            ("example.com/app=web,app", "app,example.com/app=web"),
            ("in=notin", "in=notin"),
            ("x in (in,notin)", "x in (in,notin)"),
            ("x=a\t,\ny", "x=a,y"),
        ];
        for (input, canonical) in cases {
            assert_eq!(parse(input).to_string(), canonical, "{input:?}");
        }
        // The canonical form parses back to the same selector.
        let sel = parse("tier in (web,api), !canary, env!=prod, n>3, x");
        assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
        assert_eq!(sel.requirements.len(), 5);
        assert_eq!(sel.requirements[0].key, "canary");
        assert_eq!(sel.requirements[0].op, LabelOp::DoesNotExist);
    }

    #[test]
    fn matching() {
        let sel = parse("app=nginx, tier in (web, api),!canary,env!=prod,x");
        assert!(sel.matches(&labels(&[("app", "nginx"), ("tier", "web"), ("x", "")])));
        assert!(!sel.matches(&labels(&[("app", "nginx"), ("tier", "db"), ("x", "")])));
        assert!(!sel.matches(&labels(&[
            ("app", "nginx"),
            ("tier", "web"),
            ("x", ""),
            ("canary", "1")
        ])));
        assert!(!sel.matches(&labels(&[
            ("app", "nginx"),
            ("tier", "web"),
            ("x", ""),
            ("env", "prod")
        ])));
        assert!(sel.matches(&labels(&[("app", "nginx"), ("tier", "web"), ("x", ""), ("env", "dev")])));
        assert!(!sel.matches(&labels(&[("app", "nginx"), ("tier", "web")])));

        let notin = parse("v notin (1,2)");
        assert!(notin.matches(&labels(&[])));
        assert!(notin.matches(&labels(&[("v", "3")])));
        assert!(!notin.matches(&labels(&[("v", "1")])));

        let gt = parse("n>3");
        assert!(gt.matches(&labels(&[("n", "4")])));
        assert!(!gt.matches(&labels(&[("n", "3")])));
        assert!(!gt.matches(&labels(&[("n", "x")])));
        assert!(!gt.matches(&labels(&[])));
        let lt = parse("n<3");
        assert!(lt.matches(&labels(&[("n", "-7")])));
        // A negative bound is not a valid label value, so apimachinery rejects it.
        assert!(err("n<-1").contains("values[0][n]: Invalid value: \"-1\""));
        assert!(!lt.matches(&labels(&[("n", "3")])));

        let empty_value = parse("a=");
        assert!(empty_value.matches(&labels(&[("a", "")])));
        assert!(!empty_value.matches(&labels(&[])));
        assert!(parse("a==b").matches(&labels(&[("a", "b")])));
        assert!(parse("a in ()").matches(&labels(&[("a", "")])));
    }

    #[test]
    fn grammar_errors_use_apimachinery_words() {
        let cases = [
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a,", "found '', expected: identifier after ','"),
            ("a,,b", "found ',', expected: identifier after ','"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("=b", "found '=', expected: !, identifier, or 'end of string'"),
            (",a", "found ',', expected: !, identifier, or 'end of string'"),
            ("(a)", "found '(', expected: !, identifier, or 'end of string'"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
            ("a in b", "unable to parse requirement: found 'b' expected: '('"),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in (b,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            ("a=(", "unable to parse requirement: found '(', expected: identifier"),
            (
                "a!",
                "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a>x",
                "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(input), want, "{input:?}");
        }
    }

    #[test]
    fn key_and_value_validation() {
        let e = err("-bad=x");
        assert!(
            e.starts_with("unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist of"),
            "{e}"
        );
        let e = err("a/b/c");
        assert!(
            e.starts_with("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name"),
            "{e}"
        );
        let e = err("Example.com/a=1");
        assert!(e.contains("prefix part a lowercase RFC 1123 subdomain"), "{e}");
        let e = err("a=-bad-");
        assert!(
            e.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-bad-\": a valid label must be"),
            "{e}"
        );
        let long = "x".repeat(64);
        let e = err(&format!("a={long}"));
        assert!(e.contains("must be no more than 63 characters"), "{e}");
        let e = err(&format!("{long}=1"));
        assert!(e.contains("name part must be no more than 63 characters"), "{e}");
        // Two bad values aggregate as apimachinery does.
        let e = err("a in (-x,-y)");
        assert!(
            e.starts_with("unable to parse requirement: [values[0][a]: Invalid value: \"-x\""),
            "{e}"
        );
        assert!(e.contains(", values[1][a]: Invalid value: \"-y\""), "{e}");
        assert!(e.ends_with(']'), "{e}");
    }

    #[test]
    fn requirement_constructor_checks_arity() {
        assert_eq!(
            Requirement::new("a", LabelOp::In, vec![]).unwrap_err(),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            Requirement::new("a", LabelOp::Equals, vec!["x".into(), "y".into()]).unwrap_err(),
            "values: Invalid value: [\"x\",\"y\"]: exact-match compatibility requires one single value"
        );
        assert_eq!(
            Requirement::new("a", LabelOp::Exists, vec!["x".into()]).unwrap_err(),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
        );
        assert!(Requirement::new("-a", LabelOp::Exists, vec![])
            .unwrap_err()
            .starts_with("key: Invalid value: \"-a\""));
    }

    #[test]
    fn from_api_selector() {
        use metav1::LabelSelectorRequirement as Expr;
        let api = metav1::LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                Expr {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["b".into(), "a".into()]),
                },
                Expr {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let sel = LabelSelector::from_api(&api).unwrap();
        assert_eq!(sel.to_string(), "app=web,!canary,tier in (a,b)");
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "y")])));
        assert!(LabelSelector::from_api(&metav1::LabelSelector::default())
            .unwrap()
            .is_empty());

        let bad = metav1::LabelSelector {
            match_expressions: Some(vec![Expr {
                key: "a".into(),
                operator: "Gt".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            LabelSelector::from_api(&bad).unwrap_err(),
            "\"Gt\" is not a valid label selector operator"
        );
        let bad = metav1::LabelSelector {
            match_expressions: Some(vec![Expr {
                key: "a".into(),
                operator: "In".into(),
                values: Some(vec![]),
            }]),
            ..Default::default()
        };
        assert!(LabelSelector::from_api(&bad)
            .unwrap_err()
            .contains("values set can't be empty"));
    }

    #[test]
    fn exact_matches() {
        let sel = parse("a=1,b in (2),c in (3,4),d!=5");
        assert_eq!(sel.requires_exact_match("a"), Some("1"));
        assert_eq!(sel.requires_exact_match("b"), Some("2"));
        assert_eq!(sel.requires_exact_match("c"), None);
        assert_eq!(sel.requires_exact_match("d"), None);
        assert_eq!(sel.requires_exact_match("e"), None);
    }

    #[test]
    fn field_grammar() {
        let s = FieldSelector::parse("status.phase!=Running,metadata.name=nginx").unwrap();
        // Terms come back sorted, as fields.ParseSelector sorts them.
        assert_eq!(
            s.requirements,
            vec![
                FieldRequirement {
                    field: "metadata.name".into(),
                    op: FieldOp::Equals,
                    value: "nginx".into()
                },
                FieldRequirement {
                    field: "status.phase".into(),
                    op: FieldOp::NotEquals,
                    value: "Running".into()
                },
            ]
        );
        assert_eq!(s.to_string(), "metadata.name=nginx,status.phase!=Running");
        let s = FieldSelector::parse("metadata.name==x").unwrap();
        assert_eq!(s.requirements[0].op, FieldOp::Equals);
        assert_eq!(s.requirements[0].value, "x");
        assert_eq!(FieldSelector::parse("a=").unwrap().requirements[0].value, "");
        assert_eq!(
            FieldSelector::parse("a!=b").unwrap().requirements[0].op,
            FieldOp::NotEquals
        );
        // The first operator splits; the rest is the value, where a bare `=` is an error.
        assert!(FieldSelector::parse("a!==b").is_err());
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert_eq!(FieldSelector::parse("a=b,,c=d").unwrap().requirements.len(), 2);
        // The field is not trimmed: Kubernetes then rejects it as an unsupported label.
        assert_eq!(FieldSelector::parse(" a =b").unwrap().requirements[0].field, " a ");
        assert_eq!(
            FieldSelector::parse("metadata.name=x")
                .unwrap()
                .requires_exact_match("metadata.name"),
            Some("x")
        );
    }

    #[test]
    fn field_escapes_and_errors() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,x=y").unwrap();
        assert_eq!(s.requirements[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d,x=y");
        assert_eq!(
            FieldSelector::parse("nonsense").unwrap_err(),
            "invalid selector: 'nonsense'; can't understand 'nonsense'"
        );
        assert_eq!(
            FieldSelector::parse("a=b,c").unwrap_err(),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(escape_field_value(r"a,b=c\"), r"a\,b\=c\\");
    }

    #[test]
    fn field_matching_on_pods() {
        let pod = json!({
            "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"nodeName": "peapod", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "default"},
            "status": {"phase": "Pending", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}]}
        });
        let get = |l: &str| field_value(&pod, l);
        assert_eq!(get("metadata.name").as_deref(), Some("nginx"));
        assert_eq!(get("metadata.namespace").as_deref(), Some("default"));
        assert_eq!(get("spec.nodeName").as_deref(), Some("peapod"));
        assert_eq!(get("spec.restartPolicy").as_deref(), Some("Always"));
        assert_eq!(get("spec.schedulerName").as_deref(), Some("default-scheduler"));
        assert_eq!(get("spec.serviceAccountName").as_deref(), Some("default"));
        assert_eq!(get("spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(get("status.phase").as_deref(), Some("Pending"));
        assert_eq!(get("status.podIP").as_deref(), Some("10.0.0.9"));
        assert_eq!(get("status.nominatedNodeName"), None);
        assert_eq!(get("spec"), None);

        let sel = FieldSelector::parse("metadata.name=nginx,status.phase!=Running,spec.hostNetwork=false").unwrap();
        assert!(sel.matches(&get));
        assert!(!FieldSelector::parse("spec.nodeName=other").unwrap().matches(&get));
        // A missing field compares as "".
        assert!(FieldSelector::parse("status.nominatedNodeName=").unwrap().matches(&get));
        assert!(FieldSelector::parse("status.nominatedNodeName!=x")
            .unwrap()
            .matches(&get));

        let host = json!({"spec": {"hostNetwork": true}});
        assert_eq!(field_value(&host, "spec.hostNetwork").as_deref(), Some("true"));
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert_eq!(field_value(&node, "spec.unschedulable").as_deref(), Some("false"));
        let cordoned = json!({"spec": {"unschedulable": true}});
        assert_eq!(field_value(&cordoned, "spec.unschedulable").as_deref(), Some("true"));
    }

    #[test]
    fn field_values_of_events_secrets_namespaces() {
        let ev = json!({
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u1",
                               "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
            "reason": "Pulled", "type": "Normal", "source": {"component": "kubelet", "host": "peapod"},
            "reportingComponent": "kubelet"
        });
        let get = |l: &str| field_value(&ev, l);
        for (label, want) in [
            ("involvedObject.kind", "Pod"),
            ("involvedObject.namespace", "default"),
            ("involvedObject.name", "p"),
            ("involvedObject.uid", "u1"),
            ("involvedObject.apiVersion", "v1"),
            ("involvedObject.resourceVersion", "7"),
            ("involvedObject.fieldPath", "spec.containers{c}"),
            ("reason", "Pulled"),
            ("type", "Normal"),
            ("source", "kubelet"),
            ("reportingComponent", "kubelet"),
            ("regarding.name", "p"),
            ("reportingController", "kubelet"),
        ] {
            assert_eq!(get(label).as_deref(), Some(want), "{label}");
        }
        let sel =
            FieldSelector::parse("involvedObject.name=p,involvedObject.uid=u1,source=kubelet,type=Normal").unwrap();
        assert!(sel.matches(&get));

        let ev1 = json!({"regarding": {"kind": "Pod", "name": "p"}, "reportingController": "peapod/kubelet",
                         "deprecatedSource": {"component": "kubelet"}, "type": "Warning"});
        assert_eq!(field_value(&ev1, "regarding.kind").as_deref(), Some("Pod"));
        assert_eq!(field_value(&ev1, "involvedObject.name").as_deref(), Some("p"));
        assert_eq!(
            field_value(&ev1, "reportingController").as_deref(),
            Some("peapod/kubelet")
        );
        assert_eq!(field_value(&ev1, "source").as_deref(), Some("kubelet"));

        let secret = json!({"type": "kubernetes.io/service-account-token", "metadata": {"name": "s"}});
        assert_eq!(
            field_value(&secret, "type").as_deref(),
            Some("kubernetes.io/service-account-token")
        );
        let ns = json!({"kind": "Namespace", "metadata": {"name": "kube-system"}, "status": {"phase": "Terminating"}});
        assert_eq!(field_value(&ns, "name").as_deref(), Some("kube-system"));
        assert_eq!(field_value(&secret, "name"), None);
        assert!(FieldSelector::parse("status.phase=Terminating")
            .unwrap()
            .matches(&|l| field_value(&ns, l)));
        let numbers = json!({"spec": {"replicas": 3, "paused": false}});
        assert_eq!(field_value(&numbers, "spec.replicas").as_deref(), Some("3"));
        assert_eq!(field_value(&numbers, "spec.paused").as_deref(), Some("false"));
    }
}
