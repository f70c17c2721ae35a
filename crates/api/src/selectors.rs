//! Label and field selectors: the string grammars of apimachinery's `labels.Parse` and `fields.ParseSelector`,
//! matching against an object's labels or fields, and reading a field-selector label from an object.

use crate::k8s::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// A label requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOp {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement: `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

/// A parsed label selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Token::Ident(s) => s.as_str(),
            Token::Not => "!",
            Token::Eq => "=",
            Token::DoubleEq => "==",
            Token::NotEq => "!=",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
            Token::Gt => ">",
            Token::Lt => "<",
        };
        f.write_str(s)
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (t, n) = match (c, next) {
                ('!', Some('=')) => (Token::NotEq, 2),
                ('=', Some('=')) => (Token::DoubleEq, 2),
                ('!', _) => (Token::Not, 1),
                ('=', _) => (Token::Eq, 1),
                ('(', _) => (Token::Open, 1),
                (')', _) => (Token::Close, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::Gt, 1),
                _ => (Token::Lt, 1),
            };
            out.push(t);
            i += n;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        out.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word),
        });
    }
    out
}

fn validate_key(key: &str) -> Result<(), String> {
    let errs = crate::validation::is_qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "key: Invalid value: {}: {}",
            crate::errors::quote(key),
            errs.join("; ")
        ))
    }
}

fn validate_value(key: &str, i: usize, v: &str) -> Result<(), String> {
    let errs = crate::validation::is_valid_label_value(v);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "values[{i}][{key}]: Invalid value: {}: {}",
            crate::errors::quote(v),
            errs.join("; ")
        ))
    }
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn found(t: Option<&Token>) -> String {
        t.map(|t| t.to_string()).unwrap_or_default()
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            true
        } else {
            false
        };
        let key = match self.next() {
            Some(Token::Ident(k)) => k,
            t => return Err(format!("found '{}', expected: identifier", Self::found(t.as_ref()))),
        };
        validate_key(&key)?;
        if negated {
            return Ok(Requirement {
                key,
                op: LabelOp::DoesNotExist,
                values: vec![],
            });
        }
        let op = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(Requirement {
                    key,
                    op: LabelOp::Exists,
                    values: vec![],
                })
            }
            Some(Token::Eq) => LabelOp::Equals,
            Some(Token::DoubleEq) => LabelOp::DoubleEquals,
            Some(Token::NotEq) => LabelOp::NotEquals,
            Some(Token::In) => LabelOp::In,
            Some(Token::NotIn) => LabelOp::NotIn,
            Some(Token::Gt) => LabelOp::GreaterThan,
            Some(Token::Lt) => LabelOp::LessThan,
            Some(t) => return Err(format!("found '{t}', expected: in, notin, =, ==, !=, gt, lt")),
        };
        self.pos += 1;
        let values = match op {
            LabelOp::In | LabelOp::NotIn => {
                if self.next() != Some(Token::Open) {
                    return Err(format!(
                        "found '{}', expected: '('",
                        Self::found(self.toks.get(self.pos - 1))
                    ));
                }
                let mut vals = Vec::new();
                loop {
                    match self.next() {
                        Some(Token::Ident(v)) => vals.push(v),
                        Some(Token::Close) if vals.is_empty() => break,
                        Some(Token::Comma) if vals.is_empty() => vals.push(String::new()),
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',', ')' or identifier",
                                Self::found(t.as_ref())
                            ))
                        }
                    }
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::Close) => break,
                        t => return Err(format!("found '{}', expected: ',' or ')'", Self::found(t.as_ref()))),
                    }
                }
                vals
            }
            _ => match self.peek() {
                Some(Token::Ident(v)) => {
                    let v = v.clone();
                    self.pos += 1;
                    vec![v]
                }
                None | Some(Token::Comma) => vec![String::new()],
                Some(t) => return Err(format!("found '{t}', expected: identifier")),
            },
        };
        for (i, v) in values.iter().enumerate() {
            if matches!(op, LabelOp::GreaterThan | LabelOp::LessThan) {
                if v.parse::<i64>().is_err() {
                    return Err(format!(
                        "values[{i}][{key}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        crate::errors::quote(v)
                    ));
                }
            } else {
                validate_value(&key, i, v)?;
            }
        }
        Ok(Requirement { key, op, values })
    }
}

impl LabelSelector {
    /// Parses the string form (`app=nginx,tier in (web,api),!canary`). An empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut p = Parser { toks: lex(s), pos: 0 };
        let mut reqs = Vec::new();
        if p.toks.is_empty() {
            return Ok(Self::default());
        }
        loop {
            reqs.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Token::Comma) => continue,
                Some(t) => return Err(format!("found '{t}', expected: ',' or 'end of string'")),
            }
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements: reqs })
    }

    /// From an API `LabelSelector` (`matchLabels` + `matchExpressions`).
    pub fn from_api(sel: &metav1::LabelSelector) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            validate_key(k)?;
            validate_value(k, 0, v)?;
            reqs.push(Requirement {
                key: k.clone(),
                op: LabelOp::Equals,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            validate_key(&e.key)?;
            let op = match e.operator.as_str() {
                "In" => LabelOp::In,
                "NotIn" => LabelOp::NotIn,
                "Exists" => LabelOp::Exists,
                "DoesNotExist" => LabelOp::DoesNotExist,
                other => {
                    return Err(format!(
                        "{} is not a valid label selector operator",
                        crate::errors::quote(other)
                    ))
                }
            };
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
                values: e.values.clone().unwrap_or_default(),
            });
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements: reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = labels.get(&r.key);
            match r.op {
                LabelOp::In | LabelOp::Equals | LabelOp::DoubleEquals => have.is_some_and(|v| r.values.contains(v)),
                LabelOp::NotIn | LabelOp::NotEquals => have.is_none_or(|v| !r.values.contains(v)),
                LabelOp::Exists => have.is_some(),
                LabelOp::DoesNotExist => have.is_none(),
                LabelOp::GreaterThan | LabelOp::LessThan => {
                    let (Some(v), Some(lim)) = (
                        have.and_then(|v| v.parse::<i64>().ok()),
                        r.values.first().and_then(|v| v.parse::<i64>().ok()),
                    ) else {
                        return false;
                    };
                    if r.op == LabelOp::GreaterThan {
                        v > lim
                    } else {
                        v < lim
                    }
                }
            }
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r.op {
                LabelOp::Exists => r.key.clone(),
                LabelOp::DoesNotExist => format!("!{}", r.key),
                LabelOp::Equals => format!("{}={}", r.key, r.values.join("")),
                LabelOp::DoubleEquals => format!("{}=={}", r.key, r.values.join("")),
                LabelOp::NotEquals => format!("{}!={}", r.key, r.values.join("")),
                LabelOp::GreaterThan => format!("{}>{}", r.key, r.values.join("")),
                LabelOp::LessThan => format!("{}<{}", r.key, r.values.join("")),
                LabelOp::In => format!("{} in ({})", r.key, r.values.join(",")),
                LabelOp::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A field requirement's operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

/// One field requirement: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

/// A parsed field selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

/// Splits on unescaped `sep` (a backslash escapes the next character).
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push('\\');
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if esc {
        cur.push('\\');
    }
    parts.push(cur);
    parts
}

fn unescape_value(v: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => return Err(format!("invalid escape sequence: \\{n}")),
                None => return Err("unterminated escape sequence".into()),
            }
        } else if c == ',' || c == '=' {
            return Err(format!("invalid field selector: unescaped {c:?} in value"));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses `a=b,c!=d` (with `==` as a synonym of `=`); an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        for term in split_unescaped(s, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, op, value) = if let Some(i) = term.find("!=") {
                (&term[..i], FieldOp::NotEquals, &term[i + 2..])
            } else if let Some(i) = term.find("==") {
                (&term[..i], FieldOp::Equals, &term[i + 2..])
            } else if let Some(i) = term.find('=') {
                (&term[..i], FieldOp::Equals, &term[i + 1..])
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{term}'"));
            };
            reqs.push(FieldRequirement {
                field: field.trim().to_string(),
                op,
                value: unescape_value(value)?,
            });
        }
        Ok(Self { requirements: reqs })
    }

    /// Whether the fields read by `get` satisfy every requirement (a missing field compares as "").
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = get(&r.field).unwrap_or_default();
            match r.op {
                FieldOp::Equals => v == r.value,
                FieldOp::NotEquals => v != r.value,
            }
        })
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads field-selector label `label` from an object's JSON, as Kubernetes' per-resource field sets do.
pub fn field_value(obj: &Value, label: &str) -> Option<String> {
    let ptr = |p: &str| obj.pointer(p).and_then(scalar);
    match label {
        // Booleans that Kubernetes' field sets always report, defaulting to false.
        "spec.hostNetwork" => Some(ptr("/spec/hostNetwork").unwrap_or_else(|| "false".into())),
        "spec.unschedulable" => Some(ptr("/spec/unschedulable").unwrap_or_else(|| "false".into())),
        "status.podIPs" => obj
            .pointer("/status/podIPs/0/ip")
            .and_then(scalar)
            .or_else(|| ptr("/status/podIP")),
        "source" => ptr("/source/component"),
        _ => {
            let path = format!("/{}", label.replace('.', "/"));
            ptr(&path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_grammar_and_matching() {
        let s = LabelSelector::parse("app=nginx, tier in (web, api),!canary,env!=prod,x").unwrap();
        assert_eq!(s.requirements.len(), 5);
        assert!(s.matches(&labels(&[("app", "nginx"), ("tier", "web"), ("x", "")])));
        assert!(!s.matches(&labels(&[("app", "nginx"), ("tier", "db"), ("x", "")])));
        assert!(!s.matches(&labels(&[
            ("app", "nginx"),
            ("tier", "web"),
            ("x", ""),
            ("canary", "1")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "nginx"),
            ("tier", "web"),
            ("x", ""),
            ("env", "prod")
        ])));
        assert!(!s.matches(&labels(&[("app", "nginx"), ("tier", "web")])));
        let s = LabelSelector::parse("a==b").unwrap();
        assert!(s.matches(&labels(&[("a", "b")])));
        let s = LabelSelector::parse("v notin (1,2)").unwrap();
        assert!(s.matches(&labels(&[])) && s.matches(&labels(&[("v", "3")])) && !s.matches(&labels(&[("v", "1")])));
        let s = LabelSelector::parse("n>3").unwrap();
        assert!(s.matches(&labels(&[("n", "4")])) && !s.matches(&labels(&[("n", "3")])));
        let s = LabelSelector::parse("a=").unwrap();
        assert!(s.matches(&labels(&[("a", "")])));
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(LabelSelector::parse("").unwrap().matches(&labels(&[("a", "b")])));
        assert_eq!(
            LabelSelector::parse("b=1,a in (x,y)").unwrap().to_string(),
            "a in (x,y),b=1"
        );
    }

    #[test]
    fn label_errors() {
        assert_eq!(
            LabelSelector::parse("a b").unwrap_err(),
            "found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            LabelSelector::parse("a=b c").unwrap_err(),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert!(LabelSelector::parse("a in b").unwrap_err().contains("expected: '('"));
        assert!(LabelSelector::parse("=b").unwrap_err().contains("expected: identifier"));
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("a>x").unwrap_err().contains("must be an integer"));
        assert!(LabelSelector::parse("a=-bad-")
            .unwrap_err()
            .starts_with("values[0][a]: Invalid value: \"-bad-\""));
        assert!(LabelSelector::parse("a b c,").is_err());
    }

    #[test]
    fn field_grammar() {
        let s = FieldSelector::parse("metadata.name=nginx,status.phase!=Running").unwrap();
        assert_eq!(s.requirements.len(), 2);
        let obj = serde_json::json!({"metadata": {"name": "nginx"}, "status": {"phase": "Pending"}});
        assert!(s.matches(&|l| field_value(&obj, l)));
        let s = FieldSelector::parse("metadata.name==x").unwrap();
        assert!(!s.matches(&|l| field_value(&obj, l)));
        let s = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(s.requirements[0].value, "a,b");
        assert!(FieldSelector::parse("nonsense").is_err());
        assert!(FieldSelector::parse("").unwrap().requirements.is_empty());
        let ev = serde_json::json!({"involvedObject": {"name": "p", "uid": "u"}, "source": {"component": "kubelet"}});
        let s = FieldSelector::parse("involvedObject.name=p,involvedObject.uid=u,source=kubelet").unwrap();
        assert!(s.matches(&|l| field_value(&ev, l)));
        let s = FieldSelector::parse("spec.hostNetwork=false").unwrap();
        assert!(s.matches(&|l| field_value(&obj, l)));
    }
}
