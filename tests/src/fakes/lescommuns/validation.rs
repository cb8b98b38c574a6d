//! The hub's request validation: the DTO rules (whitelist, forbid unknown
//! properties, types, required fields on create, `phaseStatut` only with a
//! `phase`), answered `400` with an array `message`, then the lookup of each
//! collectivité in the geographic reference, answered `400` with a string.

use serde_json::{json, Value};

use super::{error, Inner, PHASES, PORTEUR_KEYS, STATUTS};

/// The DTO validation (whitelist, forbid non-whitelisted, types), then the
/// geographic lookup. Returns the body as an object.
pub(super) fn validate(
    s: &Inner,
    body: Option<&Value>,
    create: bool,
) -> Result<Value, (u16, Value)> {
    let bad = |messages: Vec<String>| error(400, json!(messages), "Bad Request");
    let Some(Value::Object(body)) = body else {
        return Err(bad(vec!["request body must be a JSON object".into()]));
    };
    let mut problems = Vec::new();
    let string_or_null = |v: &Value| v.is_string() || v.is_null();
    let strings_or_null =
        |v: &Value| v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    for (key, value) in body {
        let ok = match key.as_str() {
            "nom" | "externalId" => {
                match value.as_str() {
                    None => problems.push(format!("{key} must be a string")),
                    Some(v) if v.trim().is_empty() => {
                        problems.push(format!("{key} should not be empty"))
                    }
                    Some(_) => {}
                }
                true
            }
            "description" | "programme" | "probabiliteTE" => string_or_null(value),
            "budgetPrevisionnel" => value.is_number() || value.is_null(),
            "dateDebutPrevisionnelle" => value.is_null() || value.as_str().is_some_and(iso_date),
            "phase" => value.is_null() || value.as_str().is_some_and(|v| PHASES.contains(&v)),
            "phaseStatut" => {
                value.is_null() || value.as_str().is_some_and(|v| STATUTS.contains(&v))
            }
            "competences"
            | "leviers"
            | "classificationThematiques"
            | "classificationSites"
            | "classificationInterventions" => strings_or_null(value),
            "classificationScores" => value.is_object() || value.is_null(),
            "porteur" => check_porteur(value, &mut problems),
            "collectivites" => check_collectivites(value, &mut problems),
            _ => {
                problems.push(format!("property {key} should not exist"));
                continue;
            }
        };
        if !ok {
            problems.push(format!("{key} has an invalid value"));
        }
    }
    if create {
        for required in ["nom", "externalId"] {
            if body.get(required).is_none() {
                problems.push(format!("{required} should not be empty"));
            }
        }
        if body
            .get("collectivites")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            problems.push("collectivites must contain at least 1 elements".into());
        }
    }
    if body.get("phaseStatut").is_some_and(|v| !v.is_null())
        && body.get("phase").is_none_or(Value::is_null)
    {
        problems.push("phaseStatut cannot be set without phase".into());
    }
    if !problems.is_empty() {
        return Err(bad(problems));
    }
    for c in body
        .get("collectivites")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let code = c["code"].as_str().unwrap_or_default();
        let (known, kind) = match c["type"].as_str() {
            Some("Commune") => (s.communes.contains_key(code), "Commune"),
            _ => (s.epcis.contains_key(code), "EPCI"),
        };
        if !known {
            let message = format!("Cannot find a corresponding {kind} for this code {code}");
            return Err(error(400, json!(message), "Bad Request"));
        }
    }
    Ok(Value::Object(body.clone()))
}

fn iso_date(v: &str) -> bool {
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
}

fn check_porteur(value: &Value, problems: &mut Vec<String>) -> bool {
    let Some(porteur) = value.as_object() else {
        return value.is_null();
    };
    for (k, v) in porteur {
        if !PORTEUR_KEYS.contains(&k.as_str()) {
            problems.push(format!("porteur.property {k} should not exist"));
        } else if !(v.is_string() || v.is_null()) {
            problems.push(format!("porteur.{k} must be a string"));
        }
    }
    true
}

fn check_collectivites(value: &Value, problems: &mut Vec<String>) -> bool {
    let Some(items) = value.as_array() else {
        return false;
    };
    for (i, item) in items.iter().enumerate() {
        let Some(item) = item.as_object() else {
            problems.push(format!("collectivites.{i} must be an object"));
            continue;
        };
        for k in item
            .keys()
            .filter(|k| !["type", "code"].contains(&k.as_str()))
        {
            problems.push(format!("collectivites.{i}.property {k} should not exist"));
        }
        if !["Commune", "EPCI"].contains(&item.get("type").and_then(Value::as_str).unwrap_or("")) {
            problems.push(format!(
                "collectivites.{i}.type must be one of the following values: Commune, EPCI"
            ));
        }
        if !item.get("code").is_some_and(Value::is_string) {
            problems.push(format!("collectivites.{i}.code must be a string"));
        }
    }
    true
}
