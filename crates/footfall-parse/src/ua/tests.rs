use super::crawlers::{
    crawler_name, literal_name, looks_like_domain, readable_name, EXTRA_TOOL_PATTERNS,
    MAX_BOT_NAME_LEN,
};
use super::*;
use std::hash::BuildHasher;

/// A tiny rule set in the real formats: fast to build, fully known.
const MINI_UAP: &str = r#"
user_agent_parsers:
  - regex: '(Firefox)/(\d+)\.(\d+)'
  - regex: '(Googlebot)/(\d+)\.(\d+)'
os_parsers:
  - regex: '(Linux)'
  - regex: 'Windows NT'
    os_replacement: 'Windows'
device_parsers:
  - regex: 'Googlebot'
    device_replacement: 'Spider'
"#;
const MINI_CRAWLERS: &str = r#"[
        {"pattern": "^curl\\/", "instances": ["curl/8.4.0"]},
        {"pattern": "[wW]get", "instances": ["Wget/1.0", "wget/2.0", "Wget/1.21"]}
    ]"#;

fn mini() -> Arc<UaClassifier> {
    Arc::new(UaClassifier::from_rules(MINI_UAP, MINI_CRAWLERS).expect("mini rules compile"))
}

fn same(a: &Option<Shared>, b: &Option<Shared>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn classifier_and_cache_are_thread_safe_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<UaClassifier>();
    send::<UaCache>();
}

#[test]
fn mini_rules_classify() {
    let c = mini();
    let firefox =
        c.classify("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0");
    assert_eq!(firefox.browser.as_deref(), Some("Firefox"));
    assert_eq!(firefox.browser_version.as_deref(), Some("120"));
    assert_eq!(firefox.os.as_deref(), Some("Linux"));
    assert_eq!(firefox.device, DEVICE_DESKTOP);
    assert!(!firefox.is_bot && firefox.bot_name.is_none());

    let spider = c.classify("Googlebot/2.1 (+http://www.google.com/bot.html)");
    assert_eq!((spider.device.as_ref(), spider.is_bot), (DEVICE_BOT, true));
    assert_eq!(spider.bot_name.as_deref(), Some("Googlebot"));

    let curl = c.classify("curl/8.4.0");
    assert_eq!(curl.bot_name.as_deref(), Some("curl"));
    assert_eq!(curl.browser.as_deref(), Some("Other"));
    // `Wget` is the majority spelling among the pattern's examples.
    assert_eq!(c.classify("wget/1.0").bot_name.as_deref(), Some("Wget"));

    let unknown_browser = c.classify("Mozilla/5.0 (Windows NT 10.0; Win64; x64)");
    assert_eq!(unknown_browser.os.as_deref(), Some("Windows"));
    assert_eq!(unknown_browser.device, DEVICE_OTHER);
    assert_eq!(c.classify("-"), UaInfo::unknown());
    assert_eq!(c.classify(""), UaInfo::default());
}

#[test]
fn non_ascii_and_odd_agents_are_handled() {
    let c = mini();
    let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0; Ünïcødé 日本) Gecko/20100101 Firefox/120.0";
    let info = c.classify(ua);
    assert_eq!(info.browser.as_deref(), Some("Firefox"));
    assert_eq!(info.device, DEVICE_DESKTOP);
    // Surrounding whitespace is ignored; a long agent is still classified.
    assert_eq!(
        c.classify("  curl/8.4.0\t").bot_name.as_deref(),
        Some("curl")
    );
    let long = format!("curl/8.4.0 {}", "x".repeat(100_000));
    assert!(c.classify(&long).is_bot);
}

#[test]
fn cache_hit_shares_the_cached_strings() {
    let mut cache = UaCache::new(mini());
    let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    let first = cache.get(ua);
    let second = cache.get(ua);
    assert_eq!(first, second);
    assert!(same(&first.browser, &second.browser));
    assert!(same(&first.browser_version, &second.browser_version));
    assert!(same(&first.os, &second.os));
    assert!(first.browser.is_some() && first.os.is_some());
    assert_eq!(
        cache.stats(),
        UaCacheStats {
            hits: 1,
            misses: 1,
            clears: 0
        }
    );
    assert_eq!(cache.len(), 1);

    let bot_a = cache.get("curl/8.4.0");
    let bot_b = cache.get("curl/8.4.0");
    assert!(same(&bot_a.bot_name, &bot_b.bot_name) && bot_a.bot_name.is_some());
}

#[test]
fn cache_entry_bound_is_respected() {
    let mut cache = UaCache::with_limits(mini(), 3, usize::MAX);
    for i in 0..10 {
        let ua = format!("curl/{i}");
        assert_eq!(cache.get(&ua).bot_name.as_deref(), Some("curl"));
        assert!(cache.len() <= 3, "{} entries after {ua}", cache.len());
    }
    // Inserts 4, 7 and 10 found the cache full and emptied it.
    assert_eq!(
        cache.stats(),
        UaCacheStats {
            hits: 0,
            misses: 10,
            clears: 3
        }
    );
    assert_eq!(cache.len(), 1);
    // The most recent agent is still cached.
    cache.get("curl/9");
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn cache_byte_bound_is_respected() {
    let mut cache = UaCache::with_limits(mini(), usize::MAX, 20);
    cache.get("curl/1.0.0"); // 10 bytes
    cache.get("curl/2.0.0"); // 20 bytes
    assert_eq!((cache.len(), cache.stats().clears), (2, 0));
    cache.get("curl/3.0.0"); // would be 30: clear first
    assert_eq!((cache.len(), cache.stats().clears), (1, 1));
    // Longer than the whole budget: classified, never stored.
    let long = format!("curl/{}", "9".repeat(40));
    assert_eq!(cache.get(&long).bot_name.as_deref(), Some("curl"));
    cache.get(&long);
    assert_eq!(cache.stats().misses, 5);
    assert_eq!(cache.len(), 1);
}

#[test]
fn zero_limit_disables_caching() {
    let mut cache = UaCache::with_limits(mini(), 0, DEFAULT_CACHE_KEY_BYTES);
    cache.get("curl/1");
    cache.get("curl/1");
    assert!(cache.is_empty());
    assert_eq!(
        cache.stats(),
        UaCacheStats {
            hits: 0,
            misses: 2,
            clears: 0
        }
    );
}

#[test]
fn key_hasher_is_seeded_per_cache() {
    let (a, b) = (
        crate::memo::KeyHasher::random(),
        crate::memo::KeyHasher::random(),
    );
    assert_ne!(a.seed, b.seed);
    assert_eq!(a.hash_one("curl/8.4.0"), a.hash_one("curl/8.4.0"));
    assert_ne!(a.hash_one("curl/8.4.0"), a.hash_one("curl/8.4.1"));
    assert_ne!(a.hash_one("curl/8.4.0"), b.hash_one("curl/8.4.0"));
}

#[test]
fn embedded_rules_all_compile() {
    // `embedded()` compiles rules on first use; every one must compile.
    UaClassifier::embedded()
        .compile_all()
        .expect("every embedded rule compiles");
}

#[test]
fn lazy_and_eager_rules_agree() {
    let lazy = UaClassifier::embedded();
    let eager = UaClassifier::from_rules(UAP_REGEXES_YAML, CRAWLER_USER_AGENTS_JSON).unwrap();
    for ua in [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36",
        "-",
    ] {
        assert_eq!(format!("{:?}", lazy.classify(ua)), format!("{:?}", eager.classify(ua)), "{ua}");
    }
}

#[test]
fn bad_rules_are_reported() {
    assert!(matches!(
        UaClassifier::from_rules("user_agent_parsers: [", MINI_CRAWLERS),
        Err(UaRulesError::UapYaml(_))
    ));
    let bad_os = MINI_UAP.replace("'(Linux)'", "'(Linux'");
    match UaClassifier::from_rules(&bad_os, MINI_CRAWLERS) {
        Err(UaRulesError::UapRule {
            section: "os_parsers",
            index: 0,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let bad_device = MINI_UAP.replace("'Googlebot'\n", "'(Googlebot'\n");
    match UaClassifier::from_rules(&bad_device, MINI_CRAWLERS) {
        Err(UaRulesError::UapRule {
            section: "device_parsers",
            index: 0,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        UaClassifier::from_rules(MINI_UAP, "{}"),
        Err(UaRulesError::CrawlerJson(_))
    ));
    match UaClassifier::from_rules(MINI_UAP, r#"[{"pattern": "a"}, {"pattern": "(b"}]"#) {
        Err(e @ UaRulesError::CrawlerPattern { index: 1, .. }) => {
            assert!(e.to_string().contains("\"(b\""), "{e}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn extra_tool_patterns_match_their_examples() {
    for &(pattern, example) in EXTRA_TOOL_PATTERNS {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let name = crawler_name(pattern, &re, &[example.to_owned()]);
        assert!(re.is_match(example), "{pattern} does not match {example}");
        assert!(
            !name.is_empty() && name.len() <= MAX_BOT_NAME_LEN,
            "{pattern}: {name:?}"
        );
    }
}

#[test]
fn names_from_matched_text() {
    assert_eq!(readable_name("Googlebot/").as_deref(), Some("Googlebot"));
    assert_eq!(readable_name(" sentry/").as_deref(), Some("sentry"));
    assert_eq!(
        readable_name("AdsBot-Google ").as_deref(),
        Some("AdsBot-Google")
    );
    assert_eq!(
        readable_name("Let's Encrypt").as_deref(),
        Some("Let's Encrypt")
    );
    assert_eq!(
        readable_name("Unshorten.It!").as_deref(),
        Some("Unshorten.It")
    );
    assert_eq!(
        readable_name("ContextualBot/1.0 (+http://outcomes.net").as_deref(),
        Some("ContextualBot")
    );
    assert_eq!(readable_name("/();"), None);
    assert_eq!(
        readable_name(&"x".repeat(100)).map(|n| n.len()),
        Some(MAX_BOT_NAME_LEN)
    );
}

#[test]
fn names_from_pattern_literals() {
    assert_eq!(literal_name(r"Googlebot\/").as_deref(), Some("Googlebot"));
    assert_eq!(literal_name(r"^[wW]get").as_deref(), Some("Wget"));
    assert_eq!(literal_name(r"[a-z]+bot").as_deref(), Some("bot"));
    assert_eq!(
        literal_name(r"Spider[\s\S]*spider\.com").as_deref(),
        Some("spider.com")
    );
    assert_eq!(
        literal_name(r"BlogTraffic\/\d\.\d+ Feed-Fetcher").as_deref(),
        Some("Feed-Fetcher")
    );
    assert_eq!(literal_name(r"^\d+$"), None);
    // Without a matching example the name comes from the pattern.
    let re = Regex::new(r"Example[bB]ot\/").unwrap();
    assert_eq!(
        crawler_name(r"Example[bB]ot\/", &re, &["nothing".into()]),
        "ExampleBot"
    );
}

#[test]
fn domains_are_recognised() {
    assert!(looks_like_domain("yandex.com"));
    assert!(looks_like_domain("seostar.co"));
    assert!(!looks_like_domain("Mail.RU_Bot"));
    assert!(!looks_like_domain("archive.org_bot"));
    assert!(!looks_like_domain("Googlebot"));
    assert!(!looks_like_domain("Unshorten.It"));
}
