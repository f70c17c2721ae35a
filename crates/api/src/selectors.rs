//! Label and field selectors: parsing of the string forms and matching.
//! (skeleton: owned by the selectors/patch helper)
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {}

impl LabelSelector {
    pub fn parse(_s: &str) -> Result<Self, String> {
        Ok(Self {})
    }
    pub fn matches(&self, _labels: &BTreeMap<String, String>) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(_s: &str) -> Result<Self, String> {
        Ok(Self::default())
    }
    pub fn matches(&self, _get: &dyn Fn(&str) -> Option<String>) -> bool {
        true
    }
}
