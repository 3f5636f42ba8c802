//! Channels derived from UTM-style columns (`[channel_rules]`, `docs/models.md` § Channel
//! rules): ordered regular-expression rules, first match wins, with a GA4-like preset.

use regex::{Regex, RegexBuilder};

use crate::error::{Error, Result};
use crate::settings::{ChannelRule, ChannelRules};

/// The channel of rows no rule matches (GA4 calls it "Unassigned").
pub const UNASSIGNED: &str = "unassigned";

/// Search engines, social networks and video sites of the GA4-like preset (GA4's own lists
/// are longer; these cover the common sources and are documented in `docs/models.md`).
const SEARCH: &str =
    r"^(google|bing|yahoo|baidu|duckduckgo|yandex|ecosia|naver|ask|aol|qwant|startpage)(\.[a-z.]+)?$";
const SOCIAL: &str = r"^(facebook|fb|instagram|ig|tiktok|linkedin|twitter|x|t\.co|pinterest|snapchat|reddit|threads|whatsapp|m\.facebook\.com|l\.facebook\.com)(\.[a-z.]+)?$";
const VIDEO: &str = r"^(youtube|vimeo|twitch|dailymotion)(\.[a-z.]+)?$";
const PAID: &str = r"^(.*cp.*|ppc|retargeting|paid.*)$";

/// GA4's default channel group rules, in its order, as rules of ours.
pub fn ga4_preset() -> Vec<ChannelRule> {
    let r = |channel: &str, source: Option<&str>, medium: Option<&str>, campaign: Option<&str>| ChannelRule {
        channel: channel.into(),
        source: source.map(Into::into),
        medium: medium.map(Into::into),
        campaign: campaign.map(Into::into),
    };
    vec![
        r("direct", Some(r"^(\(direct\))?$"), Some(r"^(\(none\)|\(not set\))?$"), None),
        r("cross_network", None, None, Some("cross-network")),
        r("paid_shopping", None, Some(PAID), Some(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")),
        r("paid_search", Some(SEARCH), Some(PAID), None),
        r("paid_social", Some(SOCIAL), Some(PAID), None),
        r("paid_video", Some(VIDEO), Some(PAID), None),
        r("display", None, Some(r"^(display|banner|expandable|interstitial|cpm)$"), None),
        r("paid_other", None, Some(PAID), None),
        r("organic_shopping", None, None, Some(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")),
        r("organic_social", Some(SOCIAL), None, None),
        r(
            "organic_social",
            None,
            Some(r"^(social|social-network|social-media|sm|social network|social media)$"),
            None,
        ),
        r("organic_video", Some(VIDEO), None, None),
        r("organic_video", None, Some(r"video"), None),
        r("organic_search", Some(SEARCH), None, None),
        r("organic_search", None, Some(r"^organic$"), None),
        r("referral", None, Some(r"^(referral|app|link)$"), None),
        r("email", Some(r"^(email|e-mail|e_mail|e mail)$"), None, None),
        r("email", None, Some(r"^(email|e-mail|e_mail|e mail)$"), None),
        r("affiliate", None, Some(r"^affiliate$"), None),
        r("audio", None, Some(r"^audio$"), None),
        r("sms", Some(r"^sms$"), None, None),
        r("sms", None, Some(r"^sms$"), None),
        r("mobile_push", None, Some(r"(mobile|notification|push$)"), None),
    ]
}

/// Compiled rules.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<(String, [Option<Regex>; 3])>,
    /// The (source, medium, campaign) columns, those that some rule reads.
    pub columns: Vec<String>,
    uses: [bool; 3],
}

impl RuleSet {
    /// Compile the configured rules, then the preset's; a bad pattern or preset is a
    /// configuration error naming the rule.
    pub fn compile(cfg: &ChannelRules) -> Result<RuleSet> {
        let mut all = cfg.rules.clone();
        match cfg.preset.as_deref() {
            None => {}
            Some("ga4") => all.extend(ga4_preset()),
            Some(other) => {
                return Err(Error::Config(format!("channel_rules.preset `{other}` is unknown (known: ga4)")))
            }
        }
        let mut rules = Vec::with_capacity(all.len());
        let mut uses = [false; 3];
        for (n, rule) in all.iter().enumerate() {
            if rule.channel.trim().is_empty() {
                return Err(Error::Config(format!("channel rule {} has no channel", n + 1)));
            }
            if let Some(p) = crate::core::event_log::reserved_name_problem(&rule.channel) {
                return Err(Error::Config(format!(
                    "channel rule {}: {}",
                    n + 1,
                    p.replace("in the input", "in the rule")
                )));
            }
            let mut pats: [Option<Regex>; 3] = [None, None, None];
            for (k, p) in [&rule.source, &rule.medium, &rule.campaign].into_iter().enumerate() {
                if let Some(p) = p {
                    let re = RegexBuilder::new(p).case_insensitive(true).build().map_err(|e| {
                        Error::Config(format!(
                            "channel rule {} (`{}`): bad pattern `{p}`: {e}",
                            n + 1,
                            rule.channel
                        ))
                    })?;
                    pats[k] = Some(re);
                    uses[k] = true;
                }
            }
            rules.push((rule.channel.clone(), pats));
        }
        let names = [&cfg.source, &cfg.medium, &cfg.campaign];
        let columns = (0..3).filter(|&k| uses[k]).map(|k| names[k].clone()).collect();
        Ok(RuleSet { rules, columns, uses })
    }

    /// Which of (source, medium, campaign) some rule reads.
    pub fn uses(&self) -> [bool; 3] {
        self.uses
    }

    /// The channel of one row's (source, medium, campaign); `None` when no rule matches.
    pub fn channel(&self, values: [&str; 3]) -> Option<&str> {
        self.rules
            .iter()
            .find(|(_, pats)| {
                pats.iter().zip(values).all(|(p, v)| p.as_ref().is_none_or(|re| re.is_match(v)))
            })
            .map(|(c, _)| c.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ga4() -> RuleSet {
        RuleSet::compile(&ChannelRules { preset: Some("ga4".into()), ..ChannelRules::default() }).unwrap()
    }

    #[test]
    fn the_ga4_preset_groups_common_utm_values() {
        let g = ga4();
        let ch = |s: &str, m: &str, c: &str| g.channel([s, m, c]).unwrap_or(UNASSIGNED).to_owned();
        assert_eq!(ch("", "", ""), "direct");
        assert_eq!(ch("(direct)", "(none)", ""), "direct");
        assert_eq!(ch("google", "cpc", "brand"), "paid_search");
        assert_eq!(ch("Google", "CPC", ""), "paid_search", "case-insensitive");
        assert_eq!(ch("google", "organic", ""), "organic_search");
        assert_eq!(ch("facebook", "paid_social", ""), "paid_social");
        assert_eq!(ch("instagram", "social", ""), "organic_social");
        assert_eq!(ch("youtube", "cpv", ""), "paid_video");
        assert_eq!(ch("newsletter", "email", ""), "email");
        assert_eq!(ch("partner", "affiliate", ""), "affiliate");
        assert_eq!(ch("blog.example", "referral", ""), "referral");
        assert_eq!(ch("adnet", "display", ""), "display");
        assert_eq!(ch("google", "cpc", "summer-shopping"), "paid_shopping");
        assert_eq!(ch("somewhere", "weird", ""), UNASSIGNED);
    }

    #[test]
    fn own_rules_come_first_and_the_first_match_wins() {
        let cfg = ChannelRules {
            preset: Some("ga4".into()),
            rules: vec![
                ChannelRule {
                    channel: "brand_search".into(),
                    campaign: Some("^brand".into()),
                    ..Default::default()
                },
                ChannelRule {
                    channel: "never".into(),
                    campaign: Some("^brand".into()),
                    ..Default::default()
                },
            ],
            ..ChannelRules::default()
        };
        let r = RuleSet::compile(&cfg).unwrap();
        assert_eq!(r.channel(["google", "cpc", "brand-2024"]), Some("brand_search"));
        assert_eq!(r.channel(["google", "cpc", "generic"]), Some("paid_search"));
        assert_eq!(r.columns, ["utm_source", "utm_medium", "utm_campaign"]);
    }

    #[test]
    fn a_rule_may_not_give_a_reserved_channel_name() {
        let cfg = ChannelRules {
            rules: vec![ChannelRule { channel: "(unattributed)".into(), ..Default::default() }],
            ..ChannelRules::default()
        };
        let e = RuleSet::compile(&cfg).unwrap_err().to_string();
        assert!(e.contains("channel rule 1") && e.contains("reserves"), "{e}");
    }

    #[test]
    fn a_bad_pattern_names_its_rule() {
        let cfg = ChannelRules {
            rules: vec![ChannelRule { channel: "x".into(), source: Some("(".into()), ..Default::default() }],
            ..ChannelRules::default()
        };
        let e = RuleSet::compile(&cfg).unwrap_err().to_string();
        assert!(e.contains("channel rule 1 (`x`)") && e.contains("bad pattern `(`"), "{e}");
    }
}
