//! User-agent classification: browser, OS, device class and bots.
//!
//! Two rule sets are compiled into the binary:
//!
//! * [uap-core](https://github.com/ua-parser/uap-core) `regexes.yaml`
//!   (Apache-2.0), evaluated with the `ua-parser` crate, which gives the
//!   browser family and major version, the OS family and the device family
//!   (`"Spider"` marks crawlers);
//! * [crawler-user-agents](https://github.com/monperrus/crawler-user-agents)
//!   (MIT), about 1,500 case-sensitive bot patterns, compiled into one
//!   prefiltered set so that one pass over the user agent finds every
//!   candidate pattern.
//!
//! Provenance of both files is in `data/*/README.md` of this crate.
//!
//! [`UaClassifier`] is immutable and `Send + Sync`. It holds a few thousand
//! regexes; the embedded ones are only parsed at start and each is compiled
//! the first time an agent needs it (see `vendor/README.md`), so build it
//! once and share it behind an [`Arc`]. [`UaCache`] is a bounded, per-thread memo in front of it: real
//! traffic repeats a small set of user agents, so almost every lookup is a
//! single hash-table probe that allocates nothing.
//!
//! # Bots
//!
//! An agent is a bot when uap-core's device family is `Spider` or when a
//! crawler-user-agents pattern matches. The list covers search and AI
//! crawlers, monitors, feed fetchers and most HTTP tools (curl, Wget,
//! python-requests, Go-http-client, libwww-perl, okhttp, ...); a short
//! built-in list adds HTTP libraries it lacks (PostmanRuntime, node, PHP,
//! GuzzleHttp, ...). [`UaInfo::bot_name`] is the crawler list's name for the
//! matching pattern (the text it most often matches in the entry's example
//! agents: `Googlebot`, `GPTBot`, `python-requests`); uap-core's family is
//! used instead when the list has no name or only a domain for it
//! (`YandexBot` rather than `yandex.com`).
//!
//! # Device classes
//!
//! [`UaInfo::device`] is one of [`DEVICE_BOT`], [`DEVICE_TABLET`],
//! [`DEVICE_MOBILE`], [`DEVICE_DESKTOP`] or [`DEVICE_OTHER`], decided in this
//! order:
//!
//! 1. **bot**: see above;
//! 2. **other** for televisions, set-top boxes, game consoles, VR headsets
//!    and watches, whatever else the agent claims;
//! 3. **tablet**: uap-core device iPad, Kindle or Generic Tablet, BlackBerry
//!    Tablet OS, or a tablet marker (`Tablet`, `PlayBook`, `Silk/`, `KFxx`)
//!    outside Windows (whose `Tablet PC` token is on ordinary laptops);
//! 4. Android: **mobile** with the `Mobile` token or another phone marker,
//!    **tablet** for a browser (`Mozilla/...`) without one, **mobile** for
//!    apps and libraries (`Dalvik/...`);
//! 5. **mobile**: a phone OS (iOS, Windows Phone, BlackBerry, Symbian,
//!    KaiOS, Firefox OS, ...), uap-core device iPhone, iPod or Generic
//!    Smartphone, or a phone marker (`Mobile`, `Opera Mini`, `IEMobile`,
//!    `MIDP`, `UP.Browser`, ...);
//! 6. **desktop**: a desktop OS (Windows, macOS, Linux and its
//!    distributions, ChromeOS, the BSDs, ...) with a browser uap-core knows;
//! 7. **other** for everything else. A missing, empty or `-` user agent is
//!    [`UaInfo::unknown`]: `other`, not a bot, no browser or OS.

use footfall_event::{Label, Shared};
use regex::Regex;
use std::borrow::Cow;

use crate::memo::Memo;
use std::fmt;
use std::sync::Arc;

mod crawlers;

use crawlers::{looks_like_domain, readable_name, Crawlers};

/// Device class of crawlers, monitors, scripts and HTTP libraries.
pub const DEVICE_BOT: &str = "bot";
/// Device class of tablets.
pub const DEVICE_TABLET: &str = "tablet";
/// Device class of phones.
pub const DEVICE_MOBILE: &str = "mobile";
/// Device class of desktop and laptop computers.
pub const DEVICE_DESKTOP: &str = "desktop";
/// Device class of everything else: TVs, consoles, unknown agents, no agent.
pub const DEVICE_OTHER: &str = "other";

/// The family uap-core reports when no rule matches.
const OTHER_FAMILY: &str = "Other";

/// uap-core `regexes.yaml`, see `data/uap-core/README.md`.
const UAP_REGEXES_YAML: &str = include_str!("../data/uap-core/regexes.yaml");
/// crawler-user-agents list, see `data/crawler-user-agents/README.md`.
const CRAWLER_USER_AGENTS_JSON: &str =
    include_str!("../data/crawler-user-agents/crawler-user-agents.json");

/// uap-core families that its catch-all spider rule produces from generic
/// words, or that name a browser rather than the bot.
const GENERIC_SPIDER_FAMILIES: &[&str] = &[
    OTHER_FAMILY,
    "bot",
    "robot",
    "crawl",
    "crawler",
    "crawling",
    "spider",
    "archiver",
    "favicon",
    "web crawler",
    "webcrawler",
    "web scraper",
    "webscraper",
    "Chrome",
    "Safari",
    "Firefox",
    "Electron",
    "IE",
    "Edge",
    "Opera",
];

/// What a user agent says about the client.
///
/// String fields are reference-counted so that cloning a cached value
/// allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct UaInfo {
    /// uap-core browser family (`"Chrome"`, `"Mobile Safari"`,
    /// `"Googlebot"`, ...); `"Other"` when no rule matches; `None` for an
    /// empty or `-` user agent.
    pub browser: Option<Shared>,
    /// Major browser version as written in the user agent (`"120"`), `None`
    /// when absent.
    pub browser_version: Option<Shared>,
    /// uap-core OS family (`"Windows"`, `"Mac OS X"`, `"iOS"`, `"Android"`,
    /// ...); `"Other"` when no rule matches; `None` for an empty or `-` user
    /// agent.
    pub os: Option<Shared>,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other` (see the
    /// [module documentation](self) for the rules).
    pub device: Label,
    /// The agent is a crawler, monitor, script or HTTP library.
    pub is_bot: bool,
    /// Name of the bot when [`is_bot`](Self::is_bot) is set (`"Googlebot"`,
    /// `"GPTBot"`, `"curl"`, ...).
    pub bot_name: Option<Shared>,
}

impl UaInfo {
    /// Appends this classification's event fields (`browser` to `bot_name`)
    /// as [`footfall_event::segment::agent`] writes them.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        footfall_event::segment::agent(
            out,
            self.browser.as_deref(),
            self.browser_version.as_deref(),
            self.os.as_deref(),
            &self.device,
            self.is_bot,
            self.bot_name.as_deref(),
        );
    }

    /// The classification of a missing, empty or `-` user agent: no browser,
    /// no OS, device `other`, not a bot.
    #[must_use]
    pub fn unknown() -> Self {
        UaInfo {
            browser: None,
            browser_version: None,
            os: None,
            device: Cow::Borrowed(DEVICE_OTHER),
            is_bot: false,
            bot_name: None,
        }
    }
}

impl Default for UaInfo {
    /// Same as [`UaInfo::unknown`].
    fn default() -> Self {
        UaInfo::unknown()
    }
}

/// A rule file given to [`UaClassifier::from_rules`] could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UaRulesError {
    /// `regexes.yaml` is not valid YAML or lacks a parser section.
    #[error("uap-core regexes are not a valid regexes.yaml: {0}")]
    UapYaml(#[source] serde_yaml::Error),
    /// One uap-core rule does not compile.
    #[error("uap-core {section} rule #{index} is invalid: {source}")]
    UapRule {
        /// `user_agent_parsers`, `os_parsers` or `device_parsers`.
        section: &'static str,
        /// Zero-based position of the rule in its section.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ua_parser::Error,
    },
    /// The prefilter over one uap-core section could not be built.
    #[error("uap-core {section} prefilter could not be built: {source}")]
    UapPrefilter {
        /// `user_agent_parsers`, `os_parsers` or `device_parsers`.
        section: &'static str,
        /// What went wrong.
        #[source]
        source: ua_parser::BuildError,
    },
    /// The crawler list is not a JSON array of `{"pattern": ...}` objects.
    #[error("crawler-user-agents list is not valid: {0}")]
    CrawlerJson(#[source] serde_json::Error),
    /// One crawler pattern does not compile.
    #[error("crawler-user-agents pattern #{index} {pattern:?} is invalid: {source}")]
    CrawlerPattern {
        /// Zero-based position of the entry in the list.
        index: usize,
        /// The pattern as written in the list.
        pattern: String,
        /// What is wrong with it.
        #[source]
        source: regex_filtered::ParseError,
    },
    /// The prefilter over the crawler patterns could not be built.
    #[error("crawler-user-agents prefilter could not be built: {0}")]
    CrawlerPrefilter(#[source] regex_filtered::BuildError),
}

/// User-agent substrings that decide the device class where uap-core's
/// families do not.
struct DeviceHints {
    /// Televisions, set-top boxes, game consoles, VR headsets, watches.
    not_a_computer: Regex,
    /// Explicit tablet markers (not applied to Windows, whose `Tablet PC`
    /// token is present on ordinary laptops).
    tablet: Regex,
    /// Explicit phone markers.
    mobile: Regex,
}

impl DeviceHints {
    fn new() -> Self {
        // These are fixed, tested patterns: failing to compile is a bug.
        // Word boundaries are made ASCII-only (`(?-u:\b)`) so that matching
        // stays on the lazy DFA whatever bytes the user agent contains.
        let compile = |re: &str| {
            Regex::new(&re.replace(r"\b", r"(?-u:\b)"))
                .expect("built-in device hint regex compiles")
        };
        DeviceHints {
            not_a_computer: compile(concat!(
                r"(?i)smart-?tv|hbbtv|netcast|web0s|webos\.tv|googletv|google ?tv|android ?tv|",
                r"apple ?tv|crkey|roku|bravia|viera|aquos|opera tv|philipstv|inettv|tizen[^;)]*tv|",
                r"xbox|playstation|nintendo|oculus|quest [0-9]|watch ?os|\bwatch[0-9]|",
                r"(?-i:\bTV\b|\bAFT[A-Z0-9]{1,4}\b|\bDTV\b)"
            )),
            tablet: compile(r"Tablet|PlayBook|Kindle|\bSilk/|\bKF[A-Z]{2,5}\b|\bXoom\b"),
            mobile: compile(concat!(
                r"iPhone|iPod|\bMobile\b|Windows Phone|IEMobile|BlackBerry|\bBB10\b|Opera Mini|",
                r"Opera Mobi|Symbian|SymbOS|Series ?[346]0|KAIOS|Nokia|J2ME|MIDP|UCWEB|",
                r"Fennec|Maemo|MeeGo|hpwOS|NetFront|Bada|Sailfish|Mobi\b|\bWAP\b|WAP-Browser|(?i:\bmaui\b)|",
                r"Obigo|Teleca|UP\.Browser|UP\.Link|SonyEricsson|DoCoMo|\bSEC-SGH|\bSAMSUNG-(?:SGH|GT)"
            )),
        }
    }
}

/// uap-core OS families that are phone operating systems.
fn is_mobile_os(os: &str) -> bool {
    matches!(
        os,
        "iOS"
            | "Android"
            | "Windows Phone"
            | "Windows Mobile"
            | "Windows CE"
            | "BlackBerry OS"
            | "Firefox OS"
            | "KaiOS"
            | "Bada"
            | "BREW"
            | "Brew MP"
            | "MeeGo"
            | "Maemo"
            | "Sailfish"
            | "HarmonyOS"
            | "Tizen"
            | "webOS"
            | "Palm OS"
    ) || os.starts_with("Symbian")
        || os.starts_with("Nokia Series")
}

/// uap-core OS families of desktop and laptop computers.
fn is_desktop_os(os: &str) -> bool {
    (os.starts_with("Windows") && !matches!(os, "Windows Phone" | "Windows Mobile" | "Windows CE"))
        || matches!(
            os,
            "Mac OS X"
                | "Mac OS"
                | "macOS"
                | "Linux"
                | "Chrome OS"
                | "Ubuntu"
                | "Kubuntu"
                | "Xubuntu"
                | "Lubuntu"
                | "Debian"
                | "Fedora"
                | "Red Hat"
                | "CentOS"
                | "Gentoo"
                | "Mandriva"
                | "Mageia"
                | "Slackware"
                | "SUSE"
                | "openSUSE"
                | "Linux Mint"
                | "Mint"
                | "Arch Linux"
                | "PCLinuxOS"
                | "FreeBSD"
                | "OpenBSD"
                | "NetBSD"
                | "DragonFly"
                | "BSD"
                | "Solaris"
                | "SerenityOS"
                | "Haiku"
                | "BeOS"
                | "OS/2"
        )
}

/// Compiled user-agent rules: uap-core and crawler-user-agents.
///
/// It holds a few thousand regexes: [`embedded`](Self::embedded) parses them
/// (about 50 ms in a release build) and compiles each on first use,
/// [`from_rules`](Self::from_rules) compiles them all (about 200 ms). Build
/// one at startup and share it behind an [`Arc`]; it is `Send + Sync` and
/// classification takes `&self`. Put a [`UaCache`] in front of it on each
/// worker thread.
pub struct UaClassifier {
    browsers: ua_parser::user_agent::Extractor<'static>,
    oses: ua_parser::os::Extractor<'static>,
    devices: ua_parser::device::Extractor<'static>,
    crawlers: Crawlers,
    hints: DeviceHints,
    /// Shared `"Other"` so unmatched families do not allocate.
    other: Shared,
}

impl fmt::Debug for UaClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaClassifier")
            .field("crawler_patterns", &self.crawlers.len())
            .finish_non_exhaustive()
    }
}

impl UaClassifier {
    /// The rules embedded in this crate (uap-core and crawler-user-agents at
    /// the commits named in `data/*/README.md`).
    ///
    /// # Panics
    ///
    /// Never in practice: the embedded files are compiled by this crate's
    /// tests, so a panic here means the embedded data was corrupted.
    #[must_use]
    pub fn embedded() -> Self {
        Self::build(UAP_REGEXES_YAML, CRAWLER_USER_AGENTS_JSON, true)
            .expect("embedded uap-core and crawler-user-agents rules compile")
    }

    /// Compiles rule files in the formats of uap-core's `regexes.yaml` and
    /// crawler-user-agents' `crawler-user-agents.json`, e.g. newer releases
    /// than the embedded ones.
    ///
    /// The device rules, the largest section, are compiled on a second thread
    /// while the others compile on the calling one, which shortens
    /// construction on a multi-core machine; if no thread can be spawned
    /// everything is compiled on the calling thread.
    pub fn from_rules(uap_regexes_yaml: &str, crawlers_json: &str) -> Result<Self, UaRulesError> {
        Self::build(uap_regexes_yaml, crawlers_json, false)
    }

    /// Compiles every rule that has not been compiled yet, reporting the
    /// first that cannot be (too large for the regex engine's limits).
    ///
    /// [`embedded`](Self::embedded) compiles each rule the first time the
    /// prefilter selects it for an agent, so start-up costs milliseconds
    /// rather than the few hundred milliseconds compiling all some 2,800
    /// rules would take (most are never needed by a given log);
    /// [`from_rules`](Self::from_rules) compiles everything at once.
    pub fn compile_all(&self) -> Result<(), UaRulesError> {
        let rule = |section: &'static str| {
            move |(index, e): (usize, regex_filtered::ParseError)| UaRulesError::UapRule {
                section,
                index,
                source: e.into(),
            }
        };
        self.browsers
            .compile_all()
            .map_err(rule("user_agent_parsers"))?;
        self.oses.compile_all().map_err(rule("os_parsers"))?;
        self.devices.compile_all().map_err(rule("device_parsers"))?;
        self.crawlers.compile_all()
    }

    fn build(
        uap_regexes_yaml: &str,
        crawlers_json: &str,
        lazy: bool,
    ) -> Result<Self, UaRulesError> {
        let regexes: ua_parser::Regexes<'static> =
            serde_yaml::from_str(uap_regexes_yaml).map_err(UaRulesError::UapYaml)?;
        let ua_parser::Regexes {
            user_agent_parsers,
            os_parsers,
            device_parsers,
        } = regexes;

        // The device section is the largest; compile it on a second thread.
        // If no thread can be spawned, the closure is dropped unrun and the
        // parsers are still in `device_parsers` afterwards.
        let mut device_parsers = Some(device_parsers);
        let device_slot = &mut device_parsers;
        let (devices, rest) = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("ua-rules".into())
                .spawn_scoped(scope, move || {
                    device_slot.take().map(|p| compile_devices(p, lazy))
                });
            let rest = compile_rest(user_agent_parsers, os_parsers, crawlers_json, lazy);
            let devices = match handle {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => None,
            };
            (devices, rest)
        });
        let devices = match devices {
            Some(devices) => devices,
            None => compile_devices(device_parsers.take().unwrap_or_default(), lazy),
        };
        let (browsers, oses, crawlers) = rest?;
        Ok(UaClassifier {
            browsers,
            oses,
            devices: devices?,
            crawlers,
            hints: DeviceHints::new(),
            other: Shared::from(OTHER_FAMILY),
        })
    }

    /// Classifies one user agent, without caching.
    ///
    /// Costs some microseconds (up to three prefiltered uap-core rule sets
    /// and the crawler set); use [`UaCache`] on hot paths.
    #[must_use]
    pub fn classify(&self, ua: &str) -> UaInfo {
        let ua = ua.trim();
        if ua.is_empty() || ua == "-" {
            return UaInfo::unknown();
        }

        let (browser, browser_version) = match self.browsers.extract(ua) {
            Some(v) => (self.family(&v.family), v.major.map(Shared::from)),
            None => (self.other.clone(), None),
        };
        let os = match self.oses.extract(ua) {
            Some(v) => self.family(&v.os),
            None => self.other.clone(),
        };
        // A crawler-list name settles the agent as a bot and names it, so the
        // device rules (the largest set) only run when still needed.
        let crawler = self.crawlers.matching(ua);
        let (bot_name, device) = match crawler {
            Some(name) if !looks_like_domain(name) => (Some(name.clone()), DEVICE_BOT),
            _ => {
                let device_family = self.devices.extract(ua).map(|v| v.device);
                let device_family = device_family.as_deref().unwrap_or(OTHER_FAMILY);
                if device_family == "Spider" {
                    (Some(self.spider_name(ua, &browser, crawler)), DEVICE_BOT)
                } else if let Some(name) = crawler {
                    (Some(name.clone()), DEVICE_BOT)
                } else {
                    (None, self.device_class(ua, &browser, &os, device_family))
                }
            }
        };
        UaInfo {
            browser: Some(browser),
            browser_version,
            os: Some(os),
            device: Cow::Borrowed(device),
            is_bot: bot_name.is_some(),
            bot_name,
        }
    }

    /// Name of a bot flagged by uap-core's device rules. The crawler list
    /// names most bots better than uap-core, whose catch-all spider rule
    /// yields fragments such as `com/bot`, `crawler` or a browser family, so
    /// the uap-core family is only used when the list has no name for the
    /// agent, or only a domain (`yandex.com` for every Yandex robot).
    fn spider_name(&self, ua: &str, family: &Shared, crawler: Option<&Shared>) -> Shared {
        let family_usable = readable_name(family).as_deref() == Some(&**family)
            && !GENERIC_SPIDER_FAMILIES
                .iter()
                .any(|g| family.eq_ignore_ascii_case(g));
        if family_usable {
            return family.clone();
        }
        if let Some(name) = crawler {
            return name.clone();
        }
        // Neither names it: the user agent's leading product token
        // (`WinHttp.WinHttpRequest.5`), unless that is just `Mozilla`.
        readable_name(ua)
            .filter(|name| !name.starts_with("Mozilla"))
            .map_or_else(|| self.other.clone(), Shared::from)
    }

    fn family(&self, family: &str) -> Shared {
        if family.is_empty() || family == OTHER_FAMILY {
            self.other.clone()
        } else {
            Shared::from(family)
        }
    }

    /// Device class of an agent that is not a bot.
    fn device_class(&self, ua: &str, browser: &str, os: &str, device: &str) -> &'static str {
        let hints = &self.hints;
        if hints.not_a_computer.is_match(ua)
            || matches!(
                os,
                "GoogleTV"
                    | "Roku"
                    | "tvOS"
                    | "ATV OS X"
                    | "WatchOS"
                    | "FireHbbTV"
                    | "Web0S"
                    | "WebTV"
            )
            || os.starts_with("Chromecast")
            || matches!(
                device,
                "Chromecast" | "Quest" | "Inettv" | "AppleTV" | "Apple Watch"
            )
        {
            return DEVICE_OTHER;
        }

        if device.starts_with("iPad")
            || (os == "iOS" && ua.contains("iPad"))
            || device.starts_with("Kindle")
            || device == "Generic Tablet"
            || os == "BlackBerry Tablet OS"
            || (!os.starts_with("Windows") && hints.tablet.is_match(ua))
        {
            return DEVICE_TABLET;
        }

        let mobile_hint = hints.mobile.is_match(ua);
        if os == "Android" || ua.contains("Android") {
            // Android browsers send `Mobile` on phones only; apps and
            // libraries (Dalvik, okhttp, ...) do not follow that convention
            // and mostly run on phones.
            return if ua.starts_with("Mozilla/") && !mobile_hint {
                DEVICE_TABLET
            } else {
                DEVICE_MOBILE
            };
        }

        // uap-core's "Generic Feature Phone" also catches many scripts (its
        // four-letter WAP prefixes match `http`, `port`, ...), so feature
        // phones are recognised by the hints instead.
        if is_mobile_os(os)
            || mobile_hint
            || matches!(device, "iPhone" | "iPod" | "Generic Smartphone")
        {
            return DEVICE_MOBILE;
        }

        if is_desktop_os(os) && browser != OTHER_FAMILY {
            return DEVICE_DESKTOP;
        }
        DEVICE_OTHER
    }
}

type DeviceResult = Result<ua_parser::device::Extractor<'static>, UaRulesError>;
type RestResult = Result<
    (
        ua_parser::user_agent::Extractor<'static>,
        ua_parser::os::Extractor<'static>,
        Crawlers,
    ),
    UaRulesError,
>;

fn compile_devices(parsers: Vec<ua_parser::device::Parser<'static>>, lazy: bool) -> DeviceResult {
    const SECTION: &str = "device_parsers";
    let mut builder = ua_parser::device::Builder::new().lazy(lazy);
    for (index, parser) in parsers.into_iter().enumerate() {
        builder = builder.push(parser).map_err(|e| UaRulesError::UapRule {
            section: SECTION,
            index,
            source: e.into(),
        })?;
    }
    builder
        .build()
        .map_err(|source| UaRulesError::UapPrefilter {
            section: SECTION,
            source,
        })
}

fn compile_rest(
    ua_parsers: Vec<ua_parser::user_agent::Parser<'static>>,
    os_parsers: Vec<ua_parser::os::Parser<'static>>,
    crawlers_json: &str,
    lazy: bool,
) -> RestResult {
    const UA: &str = "user_agent_parsers";
    const OS: &str = "os_parsers";
    let mut ua_builder = ua_parser::user_agent::Builder::new().lazy(lazy);
    for (index, parser) in ua_parsers.into_iter().enumerate() {
        ua_builder = ua_builder
            .push(parser)
            .map_err(|source| UaRulesError::UapRule {
                section: UA,
                index,
                source,
            })?;
    }
    let browsers = ua_builder
        .build()
        .map_err(|source| UaRulesError::UapPrefilter {
            section: UA,
            source,
        })?;

    let mut os_builder = ua_parser::os::Builder::new().lazy(lazy);
    for (index, parser) in os_parsers.into_iter().enumerate() {
        os_builder = os_builder.push(parser).map_err(|e| UaRulesError::UapRule {
            section: OS,
            index,
            source: e.into(),
        })?;
    }
    let oses = os_builder
        .build()
        .map_err(|source| UaRulesError::UapPrefilter {
            section: OS,
            source,
        })?;

    Ok((browsers, oses, Crawlers::compile(crawlers_json, lazy)?))
}

/// Default bound on the number of user agents a [`UaCache`] holds.
pub const DEFAULT_CACHE_ENTRIES: usize = 100_000;
/// Default bound on the total length of the user agents a [`UaCache`] holds
/// (16 MiB; real user agents average 100 to 200 bytes).
pub const DEFAULT_CACHE_KEY_BYTES: usize = 16 << 20;

/// Bounded per-thread memo of classifications in front of a shared
/// [`UaClassifier`].
///
/// A hit costs one hash of the user agent (XXH3 with a per-cache random
/// seed, so crafted user agents cannot force collisions) and one table probe,
/// and allocates nothing: the returned [`UaInfo`] shares its strings with the
/// cached one.
///
/// The cache holds at most [`DEFAULT_CACHE_ENTRIES`] user agents totalling at
/// most [`DEFAULT_CACHE_KEY_BYTES`] bytes (or the limits given to
/// [`UaCache::with_limits`]). Inserting past either limit first empties the
/// whole cache, keeping its allocation: the working set of a log stream is
/// re-learned within a few thousand lines, and no per-entry bookkeeping is
/// needed on hits. User agents longer than the byte limit are classified
/// every time and never stored.
pub struct UaCache {
    classifier: Arc<UaClassifier>,
    /// Each classification with its JSON ([`UaInfo::write_json`]).
    memo: Memo<(UaInfo, Box<[u8]>)>,
    stats: UaCacheStats,
}

/// Counters of a [`UaCache`] since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UaCacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that ran the classifier.
    pub misses: u64,
    /// Times the cache was emptied because a limit was reached.
    pub clears: u64,
}

impl fmt::Debug for UaCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaCache")
            .field("entries", &self.memo.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl UaCache {
    /// A cache with the default limits ([`DEFAULT_CACHE_ENTRIES`],
    /// [`DEFAULT_CACHE_KEY_BYTES`]).
    pub fn new(classifier: Arc<UaClassifier>) -> Self {
        Self::with_limits(classifier, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_KEY_BYTES)
    }

    /// A cache holding at most `max_entries` user agents totalling at most
    /// `max_key_bytes` bytes. A limit of zero disables caching.
    pub fn with_limits(
        classifier: Arc<UaClassifier>,
        max_entries: usize,
        max_key_bytes: usize,
    ) -> Self {
        UaCache {
            classifier,
            memo: Memo::new(max_entries, max_key_bytes, max_key_bytes),
            stats: UaCacheStats::default(),
        }
    }

    /// Classification of `ua`, from the cache when it was seen before.
    pub fn get(&mut self, ua: &str) -> UaInfo {
        self.get_ref(ua).clone()
    }

    /// Like [`get`](Self::get), borrowing the cached value (no reference counts touched).
    pub fn get_ref(&mut self, ua: &str) -> &UaInfo {
        self.lookup(ua).0
    }

    /// [`get_ref`](Self::get_ref), with the classification's JSON fields as
    /// [`UaInfo::write_json`] writes them (kept with it) and, when the agent
    /// is stored in the cache, a token naming it that no other agent has
    /// while this cache lives (the same agent may get a new token after the
    /// cache is emptied): a key for other caches, shorter than the agent.
    pub(crate) fn lookup(&mut self, ua: &str) -> (&UaInfo, &[u8], Option<[u64; 2]>) {
        let mut missed = false;
        let classifier = &self.classifier;
        let slot = self.memo.slot(ua.as_bytes(), || {
            missed = true;
            let info = classifier.classify(ua);
            let mut json = Vec::new();
            info.write_json(&mut json);
            (info, json.into_boxed_slice())
        });
        if missed {
            self.stats.misses += 1;
        } else {
            self.stats.hits += 1;
        }
        let token = self
            .memo
            .is_stored(slot)
            .then(|| [self.memo.generation(), slot as u64]);
        let (info, json) = self.memo.get(slot);
        (info, json, token)
    }

    /// Number of cached user agents.
    pub fn len(&self) -> usize {
        self.memo.len()
    }

    /// Whether the cache holds no user agent.
    pub fn is_empty(&self) -> bool {
        self.memo.len() == 0
    }

    /// Hit, miss and clear counters since creation.
    pub fn stats(&self) -> UaCacheStats {
        UaCacheStats {
            clears: self.memo.clears(),
            ..self.stats
        }
    }

    /// The classifier behind this cache.
    pub fn classifier(&self) -> &Arc<UaClassifier> {
        &self.classifier
    }
}

#[cfg(test)]
mod tests;
