//! Referrer classification: medium, source and search terms. (stub: being implemented)
use footfall_event::Label;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub struct ReferrerInfo {
    pub host: Option<String>,
    pub medium: Label,
    pub source: Option<Label>,
    pub search_terms: Option<String>,
}

pub struct ReferrerClassifier {}

impl ReferrerClassifier {
    pub fn embedded() -> Self { ReferrerClassifier {} }
    pub fn classify(&self, _referrer: Option<&str>, _site_hosts: &[String], _landing_query: Option<&str>) -> ReferrerInfo {
        ReferrerInfo { host: None, medium: Cow::Borrowed("direct"), source: None, search_terms: None }
    }
}
