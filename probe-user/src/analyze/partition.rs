//! The loaded rules split into one engine's worth per logsource (`linux` + a Sigma category,
//! or `tprobe` + a kind), merged where a correlation names rules of several. An event is
//! evaluated once per logsource it belongs to; with every rule in one engine, each of those
//! runs probed the fields of every other logsource's rules as well (a file open paid for the
//! `CommandLine` needles of the process rules).
use std::{collections::HashMap, path::PathBuf};

use rsigma_parser::{FilterRuleTarget, LogSource, SigmaCollection};

use super::fields::OWN_PRODUCT;

/// `(product, category)` as the analyze stage names a view: rules without a product read
/// what `linux` feeds.
pub type Source = (String, String);

pub fn source_of(ls: &LogSource) -> Source {
    let product = match ls.product.as_deref() {
        Some(OWN_PRODUCT) => OWN_PRODUCT,
        _ => "linux",
    };
    (product.to_owned(), ls.category.clone().unwrap_or_default())
}

/// One engine's rules: per rule file (in load order), the part of it that engine holds.
pub struct Part {
    pub sources: Vec<Source>,
    pub files: Vec<(PathBuf, SigmaCollection)>,
}

impl Part {
    pub fn rules(&self) -> impl Iterator<Item = &rsigma_parser::SigmaRule> {
        self.files.iter().flat_map(|(_, c)| c.rules.iter())
    }

    pub fn correlations(&self) -> usize {
        self.files.iter().map(|(_, c)| c.correlations.len()).sum()
    }
}

/// Union-find over logsource indices.
struct Sets(Vec<usize>);

impl Sets {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[b] = a;
        }
    }
}

/// Splits `files` into parts. A correlation goes with the rules it names (by id or name,
/// as the engine resolves them, through other correlations too); one that names nothing
/// known gets a part of its own, where the engine refuses it with the reason.
pub fn split(files: Vec<(PathBuf, SigmaCollection)>) -> Vec<Part> {
    let mut sources: Vec<Source> = Vec::new();
    let mut index: HashMap<Source, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (_, c) in &files {
        for r in &c.rules {
            let s = source_of(&r.logsource);
            let next = sources.len();
            let i = *index.entry(s.clone()).or_insert(next);
            if i == next {
                sources.push(s);
            }
            for n in [&r.id, &r.name].into_iter().flatten() {
                names.entry(n.clone()).or_insert(i);
            }
        }
    }
    let mut sets = Sets((0..sources.len()).collect());
    // A correlation's logsource: the first it names. Chains resolve over several passes.
    let mut corr_source: HashMap<(usize, usize), usize> = HashMap::new();
    let mut open: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(f, (_, c))| (0..c.correlations.len()).map(move |k| (f, k)))
        .collect();
    loop {
        let before = open.len();
        open.retain(|&(f, k)| {
            let c = &files[f].1.correlations[k];
            let hits: Vec<usize> = c
                .rules
                .iter()
                .filter_map(|r| names.get(r))
                .copied()
                .collect();
            if hits.len() < c.rules.len() {
                return true;
            }
            let Some(&first) = hits.first() else {
                return true;
            };
            for &h in &hits[1..] {
                sets.union(first, h);
            }
            corr_source.insert((f, k), first);
            for n in [&c.id, &c.name].into_iter().flatten() {
                names.entry(n.clone()).or_insert(first);
            }
            false
        });
        if open.len() == before {
            break;
        }
    }
    // Dense part numbers per set, then one part per correlation left unresolved.
    let mut part_of_root: HashMap<usize, usize> = HashMap::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut part_of_source = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        let root = sets.find(i);
        let p = *part_of_root.entry(root).or_insert_with(|| {
            parts.push(Part {
                sources: Vec::new(),
                files: Vec::new(),
            });
            parts.len() - 1
        });
        parts[p].sources.push(s.clone());
        part_of_source.push(p);
    }
    let mut orphan_part: HashMap<(usize, usize), usize> = HashMap::new();
    for &(f, k) in &open {
        parts.push(Part {
            sources: Vec::new(),
            files: Vec::new(),
        });
        orphan_part.insert((f, k), parts.len() - 1);
    }
    for (f, (path, coll)) in files.into_iter().enumerate() {
        let mut pieces: Vec<SigmaCollection> = (0..parts.len())
            .map(|_| SigmaCollection {
                rules: Vec::new(),
                correlations: Vec::new(),
                filters: Vec::new(),
                errors: Vec::new(),
            })
            .collect();
        for r in coll.rules {
            let p = part_of_source[index[&source_of(&r.logsource)]];
            pieces[p].rules.push(r);
        }
        for (k, c) in coll.correlations.into_iter().enumerate() {
            let p = match corr_source.get(&(f, k)) {
                Some(&s) => part_of_source[s],
                None => orphan_part[&(f, k)],
            };
            pieces[p].correlations.push(c);
        }
        // A filter goes where the rules it names are (any part for one that names none):
        // a part without them would only warn that it matched nothing.
        for filter in coll.filters {
            for (p, part) in parts.iter().enumerate() {
                let wanted = match &filter.rules {
                    FilterRuleTarget::Any => true,
                    FilterRuleTarget::Specific(refs) => {
                        part.rules().chain(pieces[p].rules.iter()).any(|r| {
                            refs.iter()
                                .any(|x| r.id.as_ref() == Some(x) || r.title == *x)
                        })
                    }
                };
                if wanted {
                    pieces[p].filters.push(filter.clone());
                }
            }
        }
        for (part, piece) in parts.iter_mut().zip(pieces) {
            let empty =
                piece.rules.is_empty() && piece.correlations.is_empty() && piece.filters.is_empty();
            if !empty {
                part.files.push((path.clone(), piece));
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coll(text: &str) -> (PathBuf, SigmaCollection) {
        (
            "r.yml".into(),
            rsigma_parser::parse_sigma_yaml(text).unwrap(),
        )
    }

    const RULES: &str = "
title: a
id: a
logsource: {category: process_creation}
detection: {s: {Image: /x}, condition: s}
---
title: b
id: b
logsource: {category: network_connection}
detection: {s: {DestinationPort: 1}, condition: s}
---
title: c
id: c
logsource: {product: tprobe, category: file.open}
detection: {s: {file.path: /y}, condition: s}
";

    #[test]
    fn one_part_per_logsource_and_correlations_join_theirs() {
        let parts = split(vec![coll(RULES)]);
        assert_eq!(parts.len(), 3);
        assert!(parts
            .iter()
            .all(|p| p.sources.len() == 1 && p.rules().count() == 1));
        let joined = format!(
            "{RULES}---
title: t
id: t
correlation: {{type: temporal, rules: [a, b], group-by: [process.entity_id], timespan: 10s}}
---
title: u
id: u
correlation: {{type: event_count, rules: [t], group-by: [process.entity_id], timespan: 10s, condition: {{gte: 2}}}}
"
        );
        let parts = split(vec![coll(&joined)]);
        assert_eq!(parts.len(), 2, "a and b share one part");
        let ab = parts.iter().find(|p| p.sources.len() == 2).unwrap();
        assert_eq!(ab.rules().count(), 2);
        assert_eq!(ab.correlations(), 2, "the chained correlation follows");
    }

    #[test]
    fn a_correlation_naming_nothing_known_is_left_for_the_engine_to_refuse() {
        let text = format!(
            "{RULES}---
title: t
id: t
correlation: {{type: event_count, rules: [nope], group-by: [process.entity_id], timespan: 10s, condition: {{gte: 2}}}}
"
        );
        let parts = split(vec![coll(&text)]);
        assert_eq!(parts.len(), 4);
        let lone = parts.iter().find(|p| p.sources.is_empty()).unwrap();
        assert_eq!(lone.correlations(), 1);
        let mut e = rsigma_eval::CorrelationEngine::new(Default::default());
        assert!(e.add_collection(&lone.files[0].1).is_err());
    }
}
