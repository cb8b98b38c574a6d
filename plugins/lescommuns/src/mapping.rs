//! A Recoco project (detail shape) as the hub's projet payload
//! (`lescommuns-api.md` §3, §5). Pure: no host call, so it is unit-tested
//! natively. Only fields the sync knows are sent: `competences`, `leviers`,
//! `budgetPrevisionnel`, `programme` and the porteur's unknown fields are left
//! out, so that a PATCH never erases what the hub (or someone else) filled in.

use recoco_connector_sdk::recoco::{Owner, Project, User};
use serde::Serialize;

/// The hub's `phase` sent with every payload: Recoco has no notion of a
/// project's maturity, and `phaseStatut` is refused without a `phase`.
pub const PHASE: &str = "Idée";

/// The body of `POST /projets` and `PATCH /projets/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjetPayload {
    /// Project name.
    pub nom: String,
    /// Project description (may be empty).
    pub description: String,
    /// The project's owner (the local authority's contact); the first active
    /// advisor with an e-mail only when the project has no owner with one;
    /// left out when there is neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub porteur: Option<Porteur>,
    /// Date part of the creation time, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_debut_previsionnelle: Option<String>,
    /// Always [`PHASE`].
    pub phase: &'static str,
    /// From the project status, see [`phase_statut`].
    pub phase_statut: &'static str,
    /// The project's commune. Left out when empty: the hub refuses an empty
    /// list on creation and ignores it on update.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collectivites: Vec<Collectivite>,
    /// The Recoco project id, the hub's upsert key.
    pub external_id: String,
}

/// The projet's referent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Porteur {
    /// E-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referent_email: Option<String>,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referent_prenom: Option<String>,
    /// Last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referent_nom: Option<String>,
}

/// A local authority of the projet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collectivite {
    /// `Commune` (the only kind Recoco knows).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// INSEE code of the commune.
    pub code: String,
}

impl ProjetPayload {
    /// Why the hub would refuse to create this projet, if it would. A projet
    /// needs a name and at least one collectivité.
    pub fn cannot_create(&self) -> Option<String> {
        if self.nom.trim().is_empty() {
            Some(format!(
                "project {} has no name, which the hub requires",
                self.external_id
            ))
        } else if self.collectivites.is_empty() {
            Some(format!(
                "project {} has no commune, and the hub requires at least one collectivité",
                self.external_id
            ))
        } else {
            None
        }
    }
}

/// Maps a project (`GET /projects/{id}/`) and its owner (the `owner` of the
/// project payload, when Recoco gives it) to the hub's payload.
pub fn map_project(project: &Project, owner: Option<&Owner>) -> ProjetPayload {
    ProjetPayload {
        nom: project.name.clone(),
        description: project.description.clone(),
        porteur: owner
            .and_then(owner_porteur)
            .or_else(|| porteur(&project.switchtenders)),
        date_debut_previsionnelle: start_date(&project.created_on),
        phase: PHASE,
        phase_statut: phase_statut(&project.status),
        collectivites: project
            .commune
            .as_ref()
            .map(|c| c.insee.trim())
            .filter(|insee| !insee.is_empty())
            .map(|insee| {
                vec![Collectivite {
                    kind: "Commune",
                    code: insee.to_owned(),
                }]
            })
            .unwrap_or_default(),
        external_id: project.id.to_string(),
    }
}

/// The hub's `phaseStatut` for a Recoco status: `DONE` → Terminé, `STUCK` →
/// Bloqué, `REJECTED` → Abandonné, anything else (the advisory process is
/// running or has not started) → En cours.
pub fn phase_statut(status: &str) -> &'static str {
    match status {
        "DONE" => "Terminé",
        "STUCK" => "Bloqué",
        "REJECTED" => "Abandonné",
        _ => "En cours",
    }
}

/// The calendar date of `created_on` in the offset it carries (the portal's
/// local date), or `None` if it does not start with `YYYY-MM-DD`.
pub fn start_date(created_on: &str) -> Option<String> {
    let date = created_on.get(..10)?;
    let bytes = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let shaped =
        digits(0..4) && bytes[4] == b'-' && digits(5..7) && bytes[7] == b'-' && digits(8..10);
    let rest_ok = matches!(created_on.as_bytes().get(10), None | Some(b'T' | b' '));
    (shaped && rest_ok).then(|| date.to_owned())
}

/// The porteur from the project's owner, if it has an e-mail (the hub
/// contacts the referent by e-mail).
pub fn owner_porteur(owner: &Owner) -> Option<Porteur> {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    text(&owner.email)?;
    Some(Porteur {
        referent_email: text(&owner.email),
        referent_prenom: text(&owner.first_name),
        referent_nom: text(&owner.last_name),
    })
}

/// The fallback porteur, for a project without owner: the first advisor, in Recoco's order, who is not deactivated
/// and has an e-mail (the hub contacts the referent by e-mail). Names come from
/// `first_name`/`last_name`; empty strings are left out rather than sent.
pub fn porteur(advisors: &[User]) -> Option<Porteur> {
    let advisor = advisors
        .iter()
        .filter(|a| a.is_active != Some(false))
        .find(|a| !a.email.trim().is_empty())?;
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    Some(Porteur {
        referent_email: text(&advisor.email),
        referent_prenom: text(&advisor.first_name),
        referent_nom: text(&advisor.last_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn fixture() -> Project {
        serde_json::from_str(include_str!("../../../tests/fixtures/project-detail.json")).unwrap()
    }

    fn body(project: &Project) -> Value {
        serde_json::to_value(map_project(project, None)).unwrap()
    }

    #[test]
    fn the_porteur_is_the_owner_and_an_advisor_only_without_one() {
        let owner = Owner {
            id: 51,
            username: "maire@saint-albin.fr".into(),
            first_name: "Sylvie".into(),
            last_name: " Martin ".into(),
            email: "maire@saint-albin.fr".into(),
            profile: None,
        };
        let got = serde_json::to_value(map_project(&fixture(), Some(&owner))).unwrap();
        assert_eq!(
            got["porteur"],
            json!({"referentEmail": "maire@saint-albin.fr", "referentPrenom": "Sylvie", "referentNom": "Martin"})
        );
        // An owner without e-mail cannot be contacted: the advisor then.
        let silent = Owner {
            email: " ".into(),
            ..owner
        };
        let got = serde_json::to_value(map_project(&fixture(), Some(&silent))).unwrap();
        assert_eq!(
            got["porteur"]["referentEmail"],
            "camille.durand@example.org"
        );
    }

    #[test]
    fn maps_the_shared_fixture_like_the_original_with_its_defects_fixed() {
        let expected: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/lescommuns-projet-payload.json"
        ))
        .unwrap();
        let got = body(&fixture());
        for key in [
            "nom",
            "description",
            "dateDebutPrevisionnelle",
            "phase",
            "phaseStatut",
            "collectivites",
            "externalId",
        ] {
            assert_eq!(got[key], expected[key], "{key}");
        }
        // Names filled (the original read `firstname`/`lastname`, always null).
        assert_eq!(
            got["porteur"],
            json!({"referentEmail": "camille.durand@example.org", "referentPrenom": "Camille", "referentNom": "Durand"})
        );
        // Never sent: they would wipe the hub's qualification or other data.
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        for absent in ["competences", "leviers", "budgetPrevisionnel", "programme"] {
            assert!(got.get(absent).is_none(), "{absent} sent: {keys:?}");
        }
    }

    #[test]
    fn every_status_has_its_phase_statut_and_the_phase_is_constant() {
        let cases = [
            ("DONE", "Terminé"),
            ("STUCK", "Bloqué"),
            ("REJECTED", "Abandonné"),
            ("PRE_DRAFT", "En cours"),
            ("DRAFT", "En cours"),
            ("TO_PROCESS", "En cours"),
            ("READY", "En cours"),
            ("IN_PROGRESS", "En cours"),
            ("", "En cours"),
            ("SOMETHING_NEW", "En cours"),
        ];
        for (status, expected) in cases {
            let mut project = fixture();
            project.status = status.into();
            let got = body(&project);
            assert_eq!(got["phaseStatut"], expected, "{status}");
            assert_eq!(got["phase"], "Idée", "{status}");
        }
        // A null status (older portals) reads as "" through the SDK.
        let project: Project = serde_json::from_value(json!({"id": 1, "status": null})).unwrap();
        assert_eq!(map_project(&project, None).phase_statut, "En cours");
    }

    #[test]
    fn a_project_without_commune_sends_no_collectivites_and_cannot_be_created() {
        let mut project = fixture();
        project.commune = None;
        let payload = map_project(&project, None);
        assert!(body(&project).get("collectivites").is_none());
        let reason = payload.cannot_create().unwrap();
        assert!(reason.contains("project 1312 has no commune"), "{reason}");

        let mut blank = fixture();
        blank.commune.as_mut().unwrap().insee = " ".into();
        assert!(map_project(&blank, None).collectivites.is_empty());
        assert_eq!(map_project(&fixture(), None).cannot_create(), None);
    }

    #[test]
    fn insee_codes_keep_their_leading_zeros() {
        let mut project = fixture();
        project.commune.as_mut().unwrap().insee = "01053".into();
        assert_eq!(
            body(&project)["collectivites"],
            json!([{"type": "Commune", "code": "01053"}])
        );
    }

    #[test]
    fn a_project_without_advisors_has_no_porteur() {
        let mut project = fixture();
        project.switchtenders.clear();
        assert!(body(&project).get("porteur").is_none());
    }

    #[test]
    fn with_several_advisors_the_first_active_one_with_an_email_is_the_porteur() {
        let mut project = fixture();
        // Fixture order: Camille Durand, then Léo Martin.
        assert_eq!(body(&project)["porteur"]["referentNom"], "Durand");

        project.switchtenders[0].is_active = Some(false);
        assert_eq!(
            body(&project)["porteur"],
            json!({"referentEmail": "leo.martin@example.org", "referentPrenom": "Léo", "referentNom": "Martin"})
        );

        project.switchtenders[0].is_active = None; // list shape: no is_active
        project.switchtenders[0].email = String::new();
        assert_eq!(body(&project)["porteur"]["referentNom"], "Martin");

        project.switchtenders[1].last_name = "  ".into();
        assert_eq!(
            body(&project)["porteur"],
            json!({"referentEmail": "leo.martin@example.org", "referentPrenom": "Léo"})
        );
    }

    #[test]
    fn the_start_date_is_the_local_calendar_date() {
        assert_eq!(
            start_date("2025-03-14T00:21:07.512344+01:00").as_deref(),
            Some("2025-03-14")
        );
        assert_eq!(start_date("2025-03-14").as_deref(), Some("2025-03-14"));
        assert_eq!(
            start_date("2025-03-14T23:59:59Z").as_deref(),
            Some("2025-03-14")
        );
        for bad in [
            "",
            "2025-3-14T10:00:00",
            "14/03/2025",
            "2025-03-14x",
            "é2025-03-1",
        ] {
            assert_eq!(start_date(bad), None, "{bad}");
        }
        let mut project = fixture();
        project.created_on = String::new();
        assert!(body(&project).get("dateDebutPrevisionnelle").is_none());
    }

    #[test]
    fn a_nameless_project_cannot_be_created() {
        let mut project = fixture();
        project.name = " ".into();
        assert!(map_project(&project, None)
            .cannot_create()
            .unwrap()
            .contains("no name"));
    }
}
