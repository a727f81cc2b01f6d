//! The CRM connector against the simulated CRM.

use chrono::{DateTime, Duration, Utc};

use super::{crm, dec};
use crate::connectors::{CrmApi, CrmContact, CrmDeal, DealStage, DeliveryError};
use crate::simulate::ledger::{DocumentKind, Effect};

fn contact(email: &str) -> CrmContact {
    CrmContact {
        email: email.to_owned(),
        first_name: Some("Jane".to_owned()),
        last_name: Some("Doe".to_owned()),
        phone: Some("+49 30 1234567".to_owned()),
        store_customer_id: Some("7001".to_owned()),
    }
}

fn deal(external_id: &str, version: DateTime<Utc>, stage: DealStage) -> CrmDeal {
    CrmDeal {
        external_id: external_id.to_owned(),
        contact_email: Some("Jane@Example.com".to_owned()),
        name: "#1042".to_owned(),
        amount: dec("40.60"),
        currency: "EUR".to_owned(),
        stage,
        closed_at: None,
        source_version: version,
    }
}

#[tokio::test]
async fn contacts_upsert_by_normalised_email() {
    let (sim, crm) = crm().await;
    let created = crm
        .upsert_contact(&contact("Jane@Example.com"), "c1")
        .await
        .expect("created");
    assert_eq!(created.status, 201);
    let mut renamed = contact(" jane@example.COM ");
    renamed.last_name = Some("Doe-Smith".to_owned());
    let updated = crm.upsert_contact(&renamed, "c2").await.expect("updated");
    assert_eq!(
        (updated.status, &updated.external_id),
        (200, &created.external_id)
    );
    // The same again is no change at all.
    crm.upsert_contact(&renamed, "c3").await.expect("unchanged");
    let effects: Vec<Effect> = sim.ledger().entries().iter().map(|e| e.effect).collect();
    assert_eq!(effects, [Effect::Created, Effect::Updated]);
    assert_eq!(
        sim.ledger()
            .check()
            .count(DocumentKind::Contact, "jane@example.com"),
        1
    );
    // A plus-address is its own key (merging it is the identity step's call), sent encoded.
    let plus = crm
        .upsert_contact(&contact("jane+shop@example.com"), "c4")
        .await
        .expect("created");
    assert_eq!(plus.status, 201);
    assert_ne!(plus.external_id, created.external_id);
    assert_eq!(
        sim.ledger()
            .check()
            .count(DocumentKind::Contact, "jane+shop@example.com"),
        1
    );
}

#[tokio::test]
async fn a_too_long_name_is_rejected_with_field_and_limit() {
    let (sim, crm) = crm().await;
    let mut long = contact("jane@example.com");
    long.first_name = Some("J".repeat(81));
    let error = crm.upsert_contact(&long, "c1").await.expect_err("rejected");
    let DeliveryError::Rejected {
        status,
        code,
        field,
        max,
        ..
    } = &error
    else {
        panic!("expected Rejected, got {error:?}");
    };
    assert_eq!(
        (*status, code.as_str(), field.as_deref(), *max),
        (422, "field_too_long", Some("first_name"), Some(80))
    );
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn deals_replay_by_idempotency_key_and_ignore_older_versions() {
    let (sim, crm) = crm().await;
    crm.upsert_contact(&contact("jane@example.com"), "c1")
        .await
        .expect("contact");
    let v1 = Utc::now();
    let paid = deal("1042", v1, DealStage::Paid);
    let first = crm.upsert_deal(&paid, "1042:v1").await.expect("created");
    let replay = crm.upsert_deal(&paid, "1042:v1").await.expect("replayed");
    assert_eq!(
        (replay.status, &replay.external_id),
        (201, &first.external_id)
    );
    assert_eq!(sim.ledger().entries_for("1042").len(), 1);

    let fulfilled = deal("1042", v1 + Duration::seconds(5), DealStage::Fulfilled);
    crm.upsert_deal(&fulfilled, "1042:v2")
        .await
        .expect("updated");
    // A late delivery of an older version is accepted and changes nothing.
    let stale = deal("1042", v1 - Duration::seconds(5), DealStage::Open);
    crm.upsert_deal(&stale, "1042:v0").await.expect("ignored");
    let record = crm.find_deal("1042").await.expect("found").expect("exists");
    assert_eq!(record.stage, DealStage::Fulfilled);
    assert_eq!(record.contact_email.as_deref(), Some("jane@example.com"));
    assert!(record.matches(&fulfilled));
    assert_eq!(sim.ledger().entries_for("1042").len(), 2);
    assert_eq!(crm.find_deal("9999").await.expect("lookup"), None);
}

#[tokio::test]
async fn a_deal_for_an_unknown_contact_is_rejected() {
    let (_sim, crm) = crm().await;
    let error = crm
        .upsert_deal(&deal("1043", Utc::now(), DealStage::Open), "k")
        .await
        .expect_err("no contact");
    assert_eq!(error.code(), "unknown_contact");
    assert!(
        matches!(&error, DeliveryError::Rejected { field: Some(f), .. } if f == "contact_email")
    );
}

#[tokio::test]
async fn a_deal_with_its_contact_is_one_write_that_replays_and_refuses_as_one() {
    let (sim, crm) = crm().await;
    let jane = contact("Jane@Example.com");
    let v1 = Utc::now();
    let paid = deal("1044", v1, DealStage::Paid);
    let first = crm
        .upsert_deal_with_contact(Some(&jane), &paid, "1044-v1-crm")
        .await
        .expect("created");
    assert_eq!(first.status, 201);
    let record = crm.find_deal("1044").await.expect("found").expect("exists");
    assert_eq!(record.contact_email.as_deref(), Some("jane@example.com"));
    assert!(record.contact_id.is_some());
    let kinds: Vec<(DocumentKind, Effect)> = sim
        .ledger()
        .entries()
        .iter()
        .map(|e| (e.kind, e.effect))
        .collect();
    assert_eq!(
        kinds,
        [
            (DocumentKind::Contact, Effect::Created),
            (DocumentKind::Deal, Effect::Created)
        ]
    );

    // The same write again (a retry after a timeout) is a replay: no second effect.
    let replay = crm
        .upsert_deal_with_contact(Some(&jane), &paid, "1044-v1-crm")
        .await
        .expect("replayed");
    assert_eq!(replay.external_id, first.external_id);
    assert_eq!(sim.ledger().entries().len(), 2);

    // A contact the CRM refuses refuses the deal too, naming the contact's field as the
    // check before sending names it: nothing of either is written.
    let mut long = contact("ann@example.com");
    long.phone = Some("1".repeat(41));
    let mut for_ann = deal("1045", v1, DealStage::Open);
    for_ann.contact_email = Some("ann@example.com".to_owned());
    let error = crm
        .upsert_deal_with_contact(Some(&long), &for_ann, "1045-v1-crm")
        .await
        .expect_err("refused");
    let DeliveryError::Rejected {
        status, field, max, ..
    } = &error
    else {
        panic!("expected Rejected, got {error:?}");
    };
    assert_eq!(
        (*status, field.as_deref(), *max),
        (422, Some("phone"), Some(40))
    );
    // A deal refused for its own field writes no contact either.
    let mut unnamed = deal("1046", v1, DealStage::Open);
    unnamed.contact_email = Some("bo@example.com".to_owned());
    unnamed.name = String::new();
    let error = crm
        .upsert_deal_with_contact(Some(&contact("bo@example.com")), &unnamed, "1046-v1-crm")
        .await
        .expect_err("refused");
    assert_eq!(error.code(), "missing_field");
    // A deal naming another contact than the one it carries is refused.
    let error = crm
        .upsert_deal_with_contact(Some(&contact("cy@example.com")), &for_ann, "1045-v2-crm")
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, DeliveryError::Rejected { field: Some(f), .. } if f == "contact_email")
    );
    assert_eq!(
        sim.ledger().entries().len(),
        2,
        "nothing refused was written"
    );
    assert_eq!(crm.find_deal("1045").await.expect("lookup"), None);
    assert_eq!(crm.find_deal("1046").await.expect("lookup"), None);

    // An older version changes nothing, the contact it carries included.
    let mut renamed = jane.clone();
    renamed.last_name = Some("Older".to_owned());
    let stale = deal("1044", v1 - Duration::seconds(5), DealStage::Open);
    crm.upsert_deal_with_contact(Some(&renamed), &stale, "1044-v0-crm")
        .await
        .expect("ignored");
    assert_eq!(
        sim.ledger().entries().len(),
        2,
        "a stale write wrote nothing"
    );

    // A deal without a contact (a guest without email) is the deal alone.
    let mut guest = deal("1047", v1, DealStage::Open);
    guest.contact_email = None;
    let alone = crm
        .upsert_deal_with_contact(None, &guest, "1047-v1-crm")
        .await
        .expect("created");
    assert_eq!(alone.status, 201);
    assert_eq!(sim.ledger().entries_for("1047").len(), 1);
}

#[tokio::test]
async fn deals_changed_since_pages_in_change_order() {
    let (_sim, crm) = crm().await;
    crm.upsert_contact(&contact("jane@example.com"), "c")
        .await
        .expect("contact");
    let start = Utc::now() - Duration::seconds(1);
    for n in 0..3 {
        crm.upsert_deal(
            &deal(&format!("30{n}"), Utc::now(), DealStage::Paid),
            &format!("d{n}"),
        )
        .await
        .expect("deal");
    }
    // Changing the first moves it to the end of the change order.
    crm.upsert_deal(
        &deal(
            "300",
            Utc::now() + Duration::seconds(1),
            DealStage::Fulfilled,
        ),
        "d0b",
    )
    .await
    .expect("deal");
    let first = crm.deals_changed_since(start, None, 2).await.expect("page");
    let cursor = first.next_cursor.clone().expect("more");
    let second = crm
        .deals_changed_since(start, Some(&cursor), 2)
        .await
        .expect("page");
    assert_eq!(second.next_cursor, None);
    let ids: Vec<String> = first
        .data
        .into_iter()
        .chain(second.data)
        .map(|d| d.external_id)
        .collect();
    assert_eq!(ids, ["301", "302", "300"]);
}
