//! Which events a connection forwards: the optional `events` list of its config.
//! The host already routes by the manifest's subscriptions (`*` here); this is
//! the per-connection choice on top.

/// Whether an event of `object_type` and `topic` passes `patterns`. No list means
/// every event. A pattern is `*`, an object type (`projects.Project`), a topic
/// (`tasks.Task/update`), or a prefix ending in `*` (`projects.*`,
/// `tasks.Task/*`) matched against the topic, which starts with the object type.
pub fn matches(patterns: Option<&[String]>, object_type: &str, topic: &str) -> bool {
    let Some(patterns) = patterns else {
        return true;
    };
    patterns.iter().any(|pattern| {
        if let Some(prefix) = pattern.strip_suffix('*') {
            topic.starts_with(prefix)
        } else if pattern.contains('/') {
            pattern == topic
        } else {
            pattern == object_type
        }
    })
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn check(patterns: &[&str], topic: &str) -> bool {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let object_type = topic.split('/').next().unwrap();
        matches(Some(&patterns), object_type, topic)
    }

    #[test]
    fn no_list_means_everything() {
        assert!(matches(None, "projects.Project", "projects.Project/update"));
        assert!(check(&["*"], "home.UserProfile/delete"));
    }

    #[test]
    fn object_types_and_topics() {
        assert!(check(&["projects.Project"], "projects.Project/create"));
        assert!(!check(&["projects.Project"], "taggit.TaggedItem/create"));
        assert!(check(&["tasks.Task/update"], "tasks.Task/update"));
        assert!(!check(&["tasks.Task/update"], "tasks.Task/delete"));
        // An object type is not a prefix of a longer one.
        assert!(!check(&["tasks.Task"], "tasks.TaskFollowup/update"));
    }

    #[test]
    fn prefixes() {
        assert!(check(&["projects.*"], "projects.Project/update"));
        assert!(!check(&["projects.*"], "survey.Answer/update"));
        assert!(check(&["tasks.Task/*"], "tasks.Task/delete"));
        assert!(check(&["survey.Answer", "tasks.*"], "tasks.Task/create"));
    }

    #[test]
    fn an_empty_list_forwards_nothing() {
        assert!(!check(&[], "projects.Project/update"));
    }
}
