//! What the catalogue derives from ONS's text and codes, by stated rules: typed entry
//! routes from the "typical entry routes and qualifications" text, and the STEM flag from
//! the SOC 2020 hierarchy. Pure, so the rules are tested on the real rows.

/// One way into an occupation that its entry text names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRoute {
    /// `university`, `apprenticeship`, `college`, `direct_entry` or
    /// `professional_registration`.
    pub kind: &'static str,
    /// The lowest RQF level the sentence states or implies for this route, if any.
    pub level: Option<u32>,
    /// The sentence of the original text that names the route.
    pub text: String,
}

/// The entry text read: each route once, in the order the text first names it, and
/// whether it says people can come in from other work.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryRoutes {
    pub routes: Vec<EntryRoute>,
    pub open_to_career_changers: bool,
}

/// The words (matched at a word start, after lowercasing and turning punctuation into
/// spaces) that name each route.
const ROUTE_WORDS: [(&str, &[&str]); 5] = [
    (
        "university",
        &[
            "degree",
            "postgraduate",
            "masters",
            "doctorate",
            "university",
            "graduate",
        ],
    ),
    ("apprenticeship", &["apprentice"]),
    (
        "college",
        &[
            "btec",
            "hnd",
            "hnc",
            "nvq",
            "svq",
            "s nvq",
            "vocational",
            "college",
            "a levels",
            "h grades",
            "city and guilds",
            "city guilds",
        ],
    ),
    (
        "direct_entry",
        &[
            "no formal academic",
            "no minimum academic",
            "no formal entry",
            "no academic",
            "not depend on academic",
            "no formal qualification",
            "no specific academic",
            "no set academic",
            "no particular academic",
            "no pre set",
            "direct entry",
        ],
    ),
    (
        "professional_registration",
        &[
            "register with",
            "registration with",
            "registered with",
            "state registration",
            "chartered",
            "licence",
            "license",
            "professional bod",
            "membership of",
            "professional institution",
        ],
    ),
];

/// The route types, as `EntryRoute::kind` names them.
pub const ROUTE_KINDS: [&str; 5] = [
    "university",
    "apprenticeship",
    "college",
    "direct_entry",
    "professional_registration",
];

/// Phrases saying that experience from other work is a way in.
const CAREER_CHANGE_WORDS: [&str; 7] = [
    "career progression",
    "relevant experience",
    "experience in a related",
    "previous experience",
    "prior experience",
    "mature",
    "internal promotion",
];

/// Words that imply an RQF level, by route.
const LEVEL_WORDS: [(&str, &str, u32); 9] = [
    ("university", "foundation degree", 5),
    ("university", "degree", 6),
    ("university", "graduate", 6),
    ("university", "masters", 7),
    ("university", "postgraduate", 7),
    ("university", "doctorate", 8),
    ("college", "hnd", 5),
    ("college", "hnc", 4),
    ("college", "a levels", 3),
];

/// Lowercase words separated by single spaces, with a space before the first, so
/// `contains(" word")` finds a word start.
fn words(text: &str) -> String {
    let mut normal = String::with_capacity(text.len() + 1);
    for character in text.chars() {
        if character.is_alphanumeric() {
            normal.extend(character.to_lowercase());
        } else if !normal.ends_with(' ') {
            normal.push(' ');
        }
    }
    format!(" {}", normal.trim_end())
}

fn names(words: &str, stem: &str) -> bool {
    words.contains(&format!(" {stem}"))
}

/// The levels stated as "level 3", "levels 2 and 3" or "levels 2 to 4" in a sentence.
fn stated_levels(words: &str) -> Vec<u32> {
    let tokens: Vec<&str> = words.split_whitespace().collect();
    let mut levels = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        if *token != "level" && *token != "levels" {
            continue;
        }
        for next in tokens.iter().skip(index + 1).take(3) {
            match next.parse::<u32>() {
                Ok(level) if (1..=8).contains(&level) => levels.push(level),
                Ok(_) => break,
                Err(_) if matches!(*next, "and" | "to" | "or") => {}
                Err(_) => break,
            }
        }
    }
    levels
}

/// The sentences of a text, split after a full stop followed by a space.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(". ")
        .map(str::trim)
        .filter(|sentence| !sentence.is_empty())
}

/// Reads ONS's entry text.
pub fn entry_routes(text: &str) -> EntryRoutes {
    let mut read = EntryRoutes::default();
    for sentence in sentences(text) {
        // "a high degree of skill" names no university route.
        let words = words(sentence).replace(" degree of ", " extent of ");
        read.open_to_career_changers |= CAREER_CHANGE_WORDS
            .iter()
            .any(|phrase| names(&words, phrase));
        for (kind, stems) in ROUTE_WORDS {
            if read.routes.iter().any(|route| route.kind == kind)
                || !stems.iter().any(|stem| names(&words, stem))
            {
                continue;
            }
            let mut levels: Vec<u32> = LEVEL_WORDS
                .iter()
                .filter(|(route, stem, _)| *route == kind && names(&words, stem))
                .map(|(_, _, level)| *level)
                .collect();
            if matches!(kind, "college" | "apprenticeship") {
                levels.extend(stated_levels(&words));
            }
            read.routes.push(EntryRoute {
                kind,
                level: levels.into_iter().min(),
                text: sentence.to_owned(),
            });
        }
    }
    read
}

/// Whether an occupation counts as STEM, in which discipline, and the rule that said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stem {
    pub is_stem: bool,
    pub discipline: &'static str,
    pub rule: &'static str,
}

/// SOC 2020 groups counted as STEM: the first entry whose code starts the unit group's
/// code decides. Social and humanities scientists (2115) and graphic designers (2142) sit
/// in STEM groups but are not STEM; they come first.
const STEM_GROUPS: [(&str, Option<&str>, &str); 22] = [
    (
        "2115",
        None,
        "unit 2115 social and humanities scientists: not STEM",
    ),
    (
        "2142",
        None,
        "unit 2142 graphic and multimedia designers: not STEM",
    ),
    (
        "211",
        Some("science"),
        "minor group 211 natural science professionals",
    ),
    (
        "212",
        Some("engineering"),
        "minor group 212 engineering professionals",
    ),
    (
        "213",
        Some("technology"),
        "minor group 213 information technology professionals",
    ),
    (
        "2141",
        Some("technology"),
        "unit 2141 web design professionals",
    ),
    (
        "215",
        Some("science"),
        "minor group 215 conservation and environment professionals",
    ),
    (
        "216",
        Some("science"),
        "minor group 216 research and development professionals",
    ),
    (
        "2433",
        Some("mathematics"),
        "unit 2433 actuaries, economists and statisticians",
    ),
    (
        "22",
        Some("health"),
        "sub-major group 22 health professionals",
    ),
    ("3111", Some("science"), "unit 3111 laboratory technicians"),
    (
        "311",
        Some("engineering"),
        "minor group 311 science, engineering and production technicians",
    ),
    (
        "312",
        Some("engineering"),
        "minor group 312 CAD, drawing and architectural technicians",
    ),
    (
        "313",
        Some("technology"),
        "minor group 313 information technology technicians",
    ),
    (
        "321",
        Some("health"),
        "minor group 321 health associate professionals",
    ),
    ("324", Some("health"), "minor group 324 veterinary nurses"),
    (
        "521",
        Some("engineering"),
        "minor group 521 metal forming, welding and related trades",
    ),
    (
        "522",
        Some("engineering"),
        "minor group 522 metal machining, fitting and instrument making trades",
    ),
    ("523", Some("engineering"), "minor group 523 vehicle trades"),
    (
        "524",
        Some("engineering"),
        "minor group 524 electrical and electronic trades",
    ),
    (
        "525",
        Some("engineering"),
        "minor group 525 skilled metal, electrical and electronic trades supervisors",
    ),
    ("", None, "not in a STEM group of SOC 2020"),
];

/// The STEM flag of unit group `soc_code`.
pub fn stem(soc_code: &str) -> Stem {
    let (_, discipline, rule) = STEM_GROUPS
        .iter()
        .find(|(prefix, _, _)| soc_code.starts_with(prefix))
        .copied()
        .unwrap_or(("", None, "not in a STEM group of SOC 2020"));
    Stem {
        is_stem: discipline.is_some(),
        discipline: discipline.unwrap_or(""),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, path::Path};

    use super::*;
    use crate::seed::{STRUCTURE_FILE, read_unit_groups};

    fn real_texts() -> HashMap<String, String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../seeds")
            .join(STRUCTURE_FILE);
        read_unit_groups(&path)
            .expect("the seed reads")
            .into_iter()
            .map(|group| (group.soc_code, group.entry_routes_text))
            .collect()
    }

    fn kinds(read: &EntryRoutes) -> Vec<(&'static str, Option<u32>)> {
        read.routes
            .iter()
            .map(|route| (route.kind, route.level))
            .collect()
    }

    /// Real ONS rows, each route checked by reading the text by hand.
    #[test]
    fn real_entry_texts_are_typed() {
        let texts = real_texts();
        let read = |code: &str| entry_routes(&texts[code]);
        // "There are no formal academic entry requirements ... Training is usually via
        // apprenticeship ... NVQs/SVQs at levels 2 and 3 are available."
        assert_eq!(
            kinds(&read("5214")),
            [
                ("direct_entry", None),
                ("apprenticeship", None),
                ("college", Some(2))
            ]
        );
        // "Entrants normally require a degree ... Entry is also possible with a relevant
        // BTEC/SQA Award or HND."
        assert_eq!(
            kinds(&read("2151")),
            [("university", Some(6)), ("college", Some(5))]
        );
        // Care workers: no academic requirements, registration with a statutory body.
        let care = read("6135");
        assert_eq!(
            kinds(&care)
                .iter()
                .map(|(kind, _)| *kind)
                .collect::<Vec<_>>(),
            ["direct_entry", "professional_registration", "college"]
        );
        // "Entry is generally via career progression from related occupations".
        assert!(read("1132").open_to_career_changers);
        assert!(!read("5214").open_to_career_changers);
        // Each route keeps the sentence that named it.
        assert!(care.routes[1].text.contains("register"), "{care:?}");
    }

    /// Nearly every unit group's text names a route (the rest are entries by election,
    /// promotion or experience alone), and most name two or more.
    #[test]
    fn nearly_every_real_text_names_a_route() {
        let texts = real_texts();
        assert_eq!(texts.len(), 412);
        let (mut several, mut none) = (0, Vec::new());
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (code, text) in &texts {
            let read = entry_routes(text);
            if read.routes.is_empty() {
                none.push(code.as_str());
            }
            several += usize::from(read.routes.len() > 1);
            for route in &read.routes {
                *counts.entry(route.kind).or_default() += 1;
            }
        }
        // 25 today, as the README says.
        assert!(none.len() <= 25, "{} name no route: {none:?}", none.len());
        assert!(several > 200, "{several} of 412 name several routes");
        for (kind, _) in ROUTE_WORDS {
            assert!(counts.get(kind).copied().unwrap_or(0) >= 20, "{counts:?}");
        }
    }

    #[test]
    fn route_kinds_are_the_routes_named() {
        assert_eq!(ROUTE_WORDS.map(|(kind, _)| kind), ROUTE_KINDS);
    }

    #[test]
    fn stem_follows_the_stated_groups() {
        for (code, stem_flag, discipline) in [
            ("2134", true, "technology"),
            ("2114", true, "science"),
            ("2115", false, ""),
            ("2122", true, "engineering"),
            ("2433", true, "mathematics"),
            ("2211", true, "health"),
            ("3111", true, "science"),
            ("3113", true, "engineering"),
            ("5241", true, "engineering"),
            ("2142", false, ""),
            ("7111", false, ""),
            ("2311", false, ""),
        ] {
            let flag = stem(code);
            assert_eq!(
                (flag.is_stem, flag.discipline),
                (stem_flag, discipline),
                "{code}"
            );
            assert!(!flag.rule.is_empty());
        }
        let texts = real_texts();
        let stem_count = texts.keys().filter(|code| stem(code).is_stem).count();
        assert!(
            (60..=140).contains(&stem_count),
            "{stem_count} STEM unit groups"
        );
    }
}
