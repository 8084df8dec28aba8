//! MITRE ATT&CK from Sigma tags: `attack.t1059.004` is a technique, `attack.execution` a
//! tactic (Sigma writes tactic names in lower case with `_` or `-`).

/// Enterprise tactics: (Sigma tag form, ATT&CK id, display name).
pub const TACTICS: &[(&str, &str, &str)] = &[
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource_development", "TA0042", "Resource Development"),
    ("initial_access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege_escalation", "TA0004", "Privilege Escalation"),
    ("defense_evasion", "TA0005", "Defense Evasion"),
    ("credential_access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral_movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command_and_control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// `(tactics, techniques)`: tactic display names and technique ids (`T1059.004`).
pub fn from_tags(tags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut tactics = Vec::new();
    let mut techniques = Vec::new();
    for t in tags {
        let Some(rest) = t.strip_prefix("attack.") else {
            continue;
        };
        let norm = rest.to_ascii_lowercase().replace('-', "_");
        if let Some(id) = norm.strip_prefix('t').filter(|id| {
            id.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }) {
            techniques.push(format!("T{id}"));
        } else if let Some((_, _, name)) = TACTICS.iter().find(|(tag, _, _)| *tag == norm) {
            tactics.push((*name).to_owned());
        }
    }
    (tactics, techniques)
}

/// The ATT&CK id of a tactic display name.
pub fn tactic_id(name: &str) -> Option<&'static str> {
    TACTICS
        .iter()
        .find(|(_, _, n)| *n == name)
        .map(|(_, id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_give_tactics_and_techniques() {
        let tags: Vec<String> = [
            "attack.execution",
            "attack.t1059.004",
            "attack.privilege-escalation",
            "attack.T1548",
            "attack.g0032",
            "cve.2021-4034",
        ]
        .map(String::from)
        .to_vec();
        let (ta, te) = from_tags(&tags);
        assert_eq!(ta, vec!["Execution", "Privilege Escalation"]);
        assert_eq!(te, vec!["T1059.004", "T1548"]);
        assert_eq!(tactic_id("Execution"), Some("TA0002"));
    }
}
