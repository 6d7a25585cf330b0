//! User-agent classification against third-party test vectors:
//!
//! * uap-core `tests/test_ua.yaml` and `tests/test_os.yaml` (Apache-2.0),
//!   copied to `tests/data/uap-core/` at the repository root;
//! * the example user agents of crawler-user-agents (MIT), read from the
//!   copy this crate embeds (`data/crawler-user-agents/`);
//! * a table of named cases for the device classes and bot names.

use footfall_parse::ua::{UaCache, UaClassifier, UaInfo};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

static CLASSIFIER: LazyLock<Arc<UaClassifier>> =
    LazyLock::new(|| Arc::new(UaClassifier::embedded()));

fn uap_test_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/uap-core")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[derive(Deserialize)]
struct TestFile<T> {
    test_cases: Vec<T>,
}

#[derive(Deserialize)]
struct UaCase {
    user_agent_string: String,
    family: String,
    major: Option<String>,
}

#[derive(Deserialize)]
struct OsCase {
    user_agent_string: String,
    family: String,
}

/// Prints the rate and up to `show` failures, returns the rate.
fn report(what: &str, total: usize, failures: &[String], show: usize) -> f64 {
    assert!(total > 0, "{what}: no test cases");
    let passed = total - failures.len();
    let rate = passed as f64 / total as f64;
    println!("{what}: {passed}/{total} = {:.2}%", rate * 100.0);
    for failure in failures.iter().take(show) {
        println!("  {failure}");
    }
    if failures.len() > show {
        println!("  ... and {} more", failures.len() - show);
    }
    rate
}

#[test]
fn uap_core_browser_family_and_major() {
    let file: TestFile<UaCase> =
        serde_yaml::from_str(&uap_test_file("test_ua.yaml")).expect("test_ua.yaml parses");
    let classifier = &*CLASSIFIER;
    let mut failures = Vec::new();
    for case in &file.test_cases {
        let info = classifier.classify(&case.user_agent_string);
        let expected_major = case.major.as_deref().filter(|m| !m.is_empty());
        if info.browser.as_deref() != Some(case.family.as_str())
            || info.browser_version.as_deref() != expected_major
        {
            failures.push(format!(
                "{:?}: expected {:?} {:?}, got {:?} {:?}",
                case.user_agent_string,
                case.family,
                expected_major,
                info.browser,
                info.browser_version
            ));
        }
    }
    let rate = report(
        "uap-core test_ua.yaml family+major",
        file.test_cases.len(),
        &failures,
        20,
    );
    assert!(
        file.test_cases.len() > 1_500,
        "test_ua.yaml has {} cases",
        file.test_cases.len()
    );
    assert!(rate >= 0.99, "family+major pass rate {rate:.4} < 0.99");
}

#[test]
fn uap_core_os_family() {
    let file: TestFile<OsCase> =
        serde_yaml::from_str(&uap_test_file("test_os.yaml")).expect("test_os.yaml parses");
    let classifier = &*CLASSIFIER;
    let mut failures = Vec::new();
    for case in &file.test_cases {
        let info = classifier.classify(&case.user_agent_string);
        if info.os.as_deref() != Some(case.family.as_str()) {
            failures.push(format!(
                "{:?}: expected {:?}, got {:?}",
                case.user_agent_string, case.family, info.os
            ));
        }
    }
    let rate = report(
        "uap-core test_os.yaml family",
        file.test_cases.len(),
        &failures,
        20,
    );
    assert!(
        file.test_cases.len() > 400,
        "test_os.yaml has {} cases",
        file.test_cases.len()
    );
    assert!(rate >= 0.99, "OS family pass rate {rate:.4} < 0.99");
}

#[derive(Deserialize)]
struct CrawlerEntry {
    pattern: String,
    #[serde(default)]
    instances: Vec<String>,
}

#[test]
fn crawler_user_agents_instances_are_bots() {
    let json = include_str!("../data/crawler-user-agents/crawler-user-agents.json");
    let entries: Vec<CrawlerEntry> =
        serde_json::from_str(json).expect("crawler-user-agents.json parses");
    let classifier = &*CLASSIFIER;
    let mut total = 0;
    let mut failures = Vec::new();
    for entry in &entries {
        for instance in &entry.instances {
            total += 1;
            let info = classifier.classify(instance);
            let consistent = info.is_bot
                && info.device == "bot"
                && info
                    .bot_name
                    .as_deref()
                    .is_some_and(|name| !name.is_empty());
            if !consistent {
                failures.push(format!(
                    "pattern {:?}: {instance:?} -> {info:?}",
                    entry.pattern
                ));
            }
        }
    }
    let rate = report(
        "crawler-user-agents instances detected as bots",
        total,
        &failures,
        20,
    );
    assert!(total > 2_000, "only {total} crawler instances");
    assert!(rate >= 0.99, "bot detection rate {rate:.4} < 0.99");
}

/// `(user agent, device, browser, major, os, bot name)`; `None` in an
/// optional column means "not checked".
type Named = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const NAMED_CASES: &[Named] = &[
    // Phones.
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
        "mobile", Some("Mobile Safari"), Some("17"), Some("iOS"), None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        "mobile", Some("Chrome Mobile"), Some("120"), Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Android 13; Mobile; rv:120.0) Gecko/120.0 Firefox/120.0",
        "mobile", Some("Firefox Mobile"), Some("120"), Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        "mobile", Some("Samsung Internet"), Some("23"), Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 12; Pixel 6 Build/SD1A.210817.023; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/94.0.4606.71 Mobile Safari/537.36",
        "mobile", Some("Chrome Mobile WebView"), Some("94"), Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Mobile; Windows Phone 8.1; Android 4.0; ARM; Trident/7.0; Touch; rv:11.0; IEMobile/11.0; NOKIA; Lumia 635) like iPhone OS 7_0_3 Mac OS X AppleWebKit/537 (KHTML, like Gecko) Mobile Safari/537",
        "mobile", Some("IE Mobile"), Some("11"), Some("Windows Phone"), None,
    ),
    (
        "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
        "mobile", Some("Opera Mini"), Some("9"), None, None,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/440.0.0.33.116]",
        "mobile", Some("Facebook"), Some("440"), Some("iOS"), None,
    ),
    // Tablets.
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "tablet", Some("Mobile Safari"), Some("16"), Some("iOS"), None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "tablet", Some("Chrome"), Some("120"), Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; SM-T510) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36",
        "tablet", Some("Samsung Internet"), Some("23"), Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Android 13; Tablet; rv:120.0) Gecko/120.0 Firefox/120.0",
        "tablet", Some("Firefox Mobile"), Some("120"), Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/535.19 (KHTML, like Gecko) Silk/3.4 Mobile Safari/535.19 Silk-Accelerated=true",
        "tablet", Some("Amazon Silk"), Some("3"), Some("Android"), None,
    ),
    // Desktops.
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "desktop", Some("Chrome"), Some("120"), Some("Windows"), None,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
        "desktop", Some("Edge"), Some("120"), Some("Windows"), None,
    ),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; SLCC2; .NET CLR 2.0.50727; Media Center PC 6.0; Tablet PC 2.0; rv:11.0) like Gecko",
        "desktop", Some("IE"), Some("11"), Some("Windows"), None,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        "desktop", Some("Safari"), Some("17"), Some("Mac OS X"), None,
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        "desktop", Some("Firefox"), Some("120"), Some("Ubuntu"), None,
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "desktop", Some("Chrome"), Some("120"), Some("Chrome OS"), None,
    ),
    // Bots.
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "bot", Some("Googlebot"), Some("2"), None, Some("Googlebot"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "bot", Some("Googlebot"), None, None, Some("Googlebot"),
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "bot", None, None, None, Some("GPTBot"),
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        "bot", None, None, None, Some("ChatGPT-User"),
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        "bot", None, None, None, Some("ClaudeBot"),
    ),
    (
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "bot", None, None, None, Some("YandexBot"),
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "bot", None, None, None, Some("bingbot"),
    ),
    (
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "bot", None, None, None, Some("AhrefsBot"),
    ),
    ("curl/8.4.0", "bot", Some("curl"), Some("8"), None, Some("curl")),
    ("Wget/1.21.4", "bot", None, None, None, Some("Wget")),
    ("python-requests/2.31.0", "bot", None, None, None, Some("python-requests")),
    ("Go-http-client/1.1", "bot", None, None, None, Some("Go-http-client")),
    ("libwww-perl/6.72", "bot", None, None, None, Some("libwww-perl")),
    ("okhttp/4.9.3", "bot", None, None, None, Some("okhttp")),
    ("PostmanRuntime/7.36.0", "bot", None, None, None, Some("PostmanRuntime")),
    ("node", "bot", None, None, None, Some("node")),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
        "bot", None, None, None, Some("HeadlessChrome"),
    ),
    // Neither computers nor phones.
    (
        "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
        "other", Some("Samsung Internet"), None, None, None,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edge/44.18363.8131",
        "other", None, None, None, None,
    ),
    (
        "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
        "other", None, None, None, None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; SHIELD Android TV Build/PPR1.180610.011) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "other", None, None, Some("Android"), None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; AFTMM) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.3.1 like Chrome/120.0 Safari/537.36",
        "other", None, None, None, None,
    ),
    // A desktop system without a known browser is not counted as a desktop.
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "other", Some("Other"), None, Some("Windows"), None),
    ("Mozilla/5.0", "other", Some("Other"), None, Some("Other"), None),
];

#[test]
fn named_device_classes() {
    let classifier = &*CLASSIFIER;
    let mut mismatches = Vec::new();
    for &(ua, device, browser, major, os, bot_name) in NAMED_CASES {
        let info = classifier.classify(ua);
        let ok = info.device == device
            && info.is_bot == (device == "bot")
            && info.bot_name.is_some() == info.is_bot
            && browser.is_none_or(|b| info.browser.as_deref() == Some(b))
            && major.is_none_or(|m| info.browser_version.as_deref() == Some(m))
            && os.is_none_or(|o| info.os.as_deref() == Some(o))
            && bot_name.is_none_or(|n| info.bot_name.as_deref() == Some(n));
        if !ok {
            mismatches.push(format!(
                "{ua:?}\n    expected {device} {browser:?} {major:?} {os:?} bot {bot_name:?}\n    got      {info:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} named cases differ:\n{}",
        mismatches.len(),
        NAMED_CASES.len(),
        mismatches.join("\n")
    );
}

#[test]
fn missing_agents_are_other_not_bots() {
    for ua in ["", "-", "   ", " - "] {
        assert_eq!(CLASSIFIER.classify(ua), UaInfo::unknown(), "{ua:?}");
    }
    let unknown = UaInfo::unknown();
    assert_eq!(unknown.device, "other");
    assert!(!unknown.is_bot && unknown.browser.is_none() && unknown.os.is_none());
}

#[test]
fn cache_agrees_with_classifier_on_vectors() {
    let file: TestFile<OsCase> =
        serde_yaml::from_str(&uap_test_file("test_os.yaml")).expect("test_os.yaml parses");
    // Small limits so the cache is emptied several times along the way.
    let mut cache = UaCache::with_limits(Arc::clone(&CLASSIFIER), 50, 1 << 20);
    for _ in 0..2 {
        for case in &file.test_cases {
            let ua = &case.user_agent_string;
            assert_eq!(cache.get(ua), CLASSIFIER.classify(ua), "{ua:?}");
            assert!(cache.len() <= 50);
        }
    }
    let stats = cache.stats();
    assert!(stats.clears > 0, "{stats:?}");
    assert_eq!(stats.hits + stats.misses, 2 * file.test_cases.len() as u64);
}
