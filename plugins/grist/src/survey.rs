//! Survey answers as cell values: the kind of a question (free text, yes/no,
//! yes/no/don't know, single or multiple choice) and the values an answer gives
//! its columns, encoded as Grist stores them. Pure functions.

use recoco_connector_sdk::recoco::{Choice, Question, SurveyAnswer};
use serde_json::{json, Value};

use crate::columns::{attachment_key, comment_key, survey_key};

/// How a question is answered, which decides its columns and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No choices: the answer is the comment text.
    Simple,
    /// Choices "Oui" and "Non": a Bool.
    YesNo,
    /// "Oui", "Non" and "Je ne sais pas": the chosen text, lower-cased.
    YesNoMaybe,
    /// Other choices, one selected: its conclusion (else its text).
    SingleChoice,
    /// Several choices may be selected: a ChoiceList.
    Multiple,
}

/// A choice text compared without case and spaces (`Je ne sais pas` → `jenesaispas`).
fn squashed(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The kind of `q`. Choice texts are lower-cased *before* sorting, so "non" and
/// "Oui" are a yes/no question too (the original sorted first and missed it).
pub fn kind(q: &Question) -> Kind {
    if q.is_multiple {
        return Kind::Multiple;
    }
    if q.choices.is_empty() {
        return Kind::Simple;
    }
    let mut texts: Vec<String> = q.choices.iter().map(|c| squashed(&c.text)).collect();
    texts.sort();
    match texts.join("/").as_str() {
        "non/oui" => Kind::YesNo,
        "jenesaispas/non/oui" => Kind::YesNoMaybe,
        _ => Kind::SingleChoice,
    }
}

/// What a selected choice says: its conclusion when it has one, else its text.
fn choice_label(choice: &Choice) -> String {
    match choice.conclusion.as_deref().map(str::trim) {
        Some(conclusion) if !conclusion.is_empty() => conclusion.to_owned(),
        _ => choice.text.clone(),
    }
}

/// The values an answer gives, by logical column key: the value column, the
/// comment column unless the question is free text, and the attachment column
/// when the answer carries a file.
pub fn answer_values(answer: &SurveyAnswer) -> Vec<(String, Value)> {
    let q = &answer.question;
    let kind = kind(q);
    let first = answer.choices.first();
    let value = match kind {
        Kind::Simple => json!(answer.comment),
        // Unanswered is unknown, not "no" (the original wrote false).
        Kind::YesNo => match first.map(|c| squashed(&c.text)).as_deref() {
            Some("oui") => json!(true),
            Some("non") => json!(false),
            _ => Value::Null,
        },
        Kind::YesNoMaybe => json!(first
            .map(|c| c.text.trim().to_lowercase())
            .unwrap_or_default()),
        Kind::SingleChoice => {
            json!(answer
                .choices
                .iter()
                .map(choice_label)
                .collect::<Vec<_>>()
                .join(","))
        }
        // A list, never a comma-joined string: Grist would split labels holding a comma.
        Kind::Multiple if answer.choices.is_empty() => Value::Null,
        Kind::Multiple => {
            let mut list = vec![json!("L")];
            list.extend(answer.choices.iter().map(|c| json!(choice_label(c))));
            Value::Array(list)
        }
    };
    let mut values = vec![(survey_key(&q.slug), value)];
    if kind != Kind::Simple {
        values.push((comment_key(&q.slug), json!(answer.comment)));
    }
    if let Some(url) = answer
        .attachment
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        values.push((attachment_key(&q.slug), json!(url)));
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(text: &str, conclusion: Option<&str>) -> Choice {
        Choice {
            text: text.into(),
            conclusion: conclusion.map(Into::into),
            ..Choice::default()
        }
    }

    fn question(multiple: bool, choices: Vec<Choice>) -> Question {
        Question {
            slug: "q-1".into(),
            is_multiple: multiple,
            choices,
            ..Question::default()
        }
    }

    fn answer(q: Question, selected: &[usize], comment: &str) -> SurveyAnswer {
        SurveyAnswer {
            choices: selected.iter().map(|i| q.choices[*i].clone()).collect(),
            question: q,
            comment: comment.into(),
            ..SurveyAnswer::default()
        }
    }

    #[test]
    fn detects_the_kinds_of_the_original_tests() {
        let single = question(
            false,
            vec![
                choice("Bon état général, pas de travaux à prévoir", None),
                choice("Etat moyen, travaux à prévoir", None),
            ],
        );
        assert_eq!(kind(&single), Kind::SingleChoice);
        assert_eq!(
            kind(&question(
                false,
                vec![choice("Oui", None), choice("Non", None)]
            )),
            Kind::YesNo
        );
        let maybe = question(
            false,
            vec![
                choice("Oui", None),
                choice("Non", None),
                choice("Je ne sais pas", None),
            ],
        );
        assert_eq!(kind(&maybe), Kind::YesNoMaybe);
        assert_eq!(kind(&question(true, vec![])), Kind::Multiple);
        assert_eq!(kind(&question(false, vec![])), Kind::Simple);
        // Fixed: case no longer matters.
        assert_eq!(
            kind(&question(
                false,
                vec![choice("non", None), choice("Oui", None)]
            )),
            Kind::YesNo
        );
        assert_eq!(
            kind(&question(
                false,
                vec![choice(" OUI ", None), choice("NON", None)]
            )),
            Kind::YesNo
        );
    }

    #[test]
    fn values_per_kind() {
        let yes_no = question(false, vec![choice("Oui", None), choice("Non", None)]);
        assert_eq!(
            answer_values(&answer(yes_no.clone(), &[0], "c"))[0].1,
            json!(true)
        );
        assert_eq!(
            answer_values(&answer(yes_no.clone(), &[1], ""))[0].1,
            json!(false)
        );
        let unanswered = answer_values(&answer(yes_no, &[], "only a comment"));
        assert_eq!(unanswered[0].1, Value::Null);
        assert_eq!(
            unanswered[1],
            ("survey:q-1#comment".into(), json!("only a comment"))
        );

        let maybe = question(
            false,
            vec![
                choice("Oui", None),
                choice("Non", None),
                choice("Je ne sais pas", None),
            ],
        );
        assert_eq!(
            answer_values(&answer(maybe.clone(), &[2], ""))[0].1,
            json!("je ne sais pas")
        );
        assert_eq!(answer_values(&answer(maybe, &[], ""))[0].1, json!(""));

        let single = question(
            false,
            vec![choice("Bon", Some("Bâti sain")), choice("Moyen", Some(""))],
        );
        assert_eq!(
            answer_values(&answer(single.clone(), &[0], ""))[0].1,
            json!("Bâti sain")
        );
        assert_eq!(
            answer_values(&answer(single, &[1], ""))[0].1,
            json!("Moyen")
        );

        let multiple = question(
            true,
            vec![
                choice("Commerce, artisanat", None),
                choice("Mobilité", Some("Mobilités douces")),
            ],
        );
        let values = answer_values(&answer(multiple.clone(), &[0, 1], "m"));
        assert_eq!(
            values[0].1,
            json!(["L", "Commerce, artisanat", "Mobilités douces"])
        );
        assert_eq!(values[1].1, json!("m"));
        assert_eq!(answer_values(&answer(multiple, &[], ""))[0].1, Value::Null);

        let simple = answer_values(&answer(question(false, vec![]), &[], "Halle de 1890"));
        assert_eq!(simple, vec![("survey:q-1".into(), json!("Halle de 1890"))]);
    }

    #[test]
    fn attachments_get_their_own_column() {
        let mut a = answer(question(false, vec![]), &[], "");
        a.attachment = Some("https://p.example.org/media/x.pdf".into());
        let values = answer_values(&a);
        assert_eq!(
            values[1],
            (
                "survey:q-1#attachment".into(),
                json!("https://p.example.org/media/x.pdf")
            )
        );
        a.attachment = Some(String::new());
        assert_eq!(answer_values(&a).len(), 1);
    }
}
