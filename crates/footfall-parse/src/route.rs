//! Route templates: collapse ids in paths so page tables have bounded cardinality. (stub)
use std::borrow::Cow;

#[derive(Debug, Clone, Default)]
pub struct RouteRules {}

impl RouteRules {
    pub fn add_rule(&mut self, _segment: &str, _placeholder: &str) -> Result<(), String> { Ok(()) }
    pub fn template<'a>(&self, path: &'a str) -> Cow<'a, str> { Cow::Borrowed(path) }
}
