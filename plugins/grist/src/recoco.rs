//! What the connector reads from the portal through the host's source API (which
//! holds the credentials and renews the token): a project, all its survey
//! answers (every session, every page), all survey questions, and pages of the
//! project list. Never trusts a webhook body for data: it may be stale.

use recoco_connector_sdk::recoco::{
    Page, Project, ProjectListItem, Question, Session, SurveyAnswer,
};
use recoco_connector_sdk::{source_api, Error};

/// Path of the first page of the project list, `page_size` projects a page.
pub fn projects_path(page_size: u32) -> String {
    format!("/projects/?limit={page_size}")
}

/// The project, or `None` when Recoco answers 404 (deleted, soft-deleted, or
/// no longer on this portal).
pub fn project(id: u64) -> Result<Option<Project>, Error> {
    let path = format!("/projects/{id}/");
    let response = source_api::get(&path)?;
    if response.status == 404 {
        return Ok(None);
    }
    let what = format!("GET {path}");
    let project = response
        .ensure_success(&what)?
        .json()
        .map_err(|e| e.context(&what))?;
    Ok(Some(project))
}

/// Every answer of every survey session of the project.
pub fn answers(project_id: u64) -> Result<Vec<SurveyAnswer>, Error> {
    let sessions: Vec<Session> =
        source_api::get_all_pages(&format!("/survey/sessions/?project_id={project_id}"))?;
    let mut answers = Vec::new();
    for session in sessions
        .iter()
        .filter(|s| s.project == project_id || s.project == 0)
    {
        answers.extend(source_api::get_all_pages::<SurveyAnswer>(&format!(
            "/survey/sessions/{}/answers/",
            session.id
        ))?);
    }
    Ok(answers)
}

/// Every survey question of the portal, in id order.
pub fn questions() -> Result<Vec<Question>, Error> {
    source_api::get_all_pages("/survey/questions/?limit=500")
}

/// One page of the project list (`path` is the first page's or a `next` link).
pub fn projects_page(path: &str) -> Result<Page<ProjectListItem>, Error> {
    let what = format!("GET {}", path.split('?').next().unwrap_or(path));
    source_api::get(path)?
        .ensure_success(&what)?
        .json()
        .map_err(|e| e.context(&what))
}
