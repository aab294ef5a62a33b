use super::*;

const NOW: i64 = 1_000_000;

fn books(balance: i64, held: i64) -> BatchReads {
    BatchReads {
        funds: HashMap::from([(UserId(7), Funds { balance, held })]),
        ..BatchReads::default()
    }
}

fn debit(id: &str, amount: i64) -> Request {
    Request {
        operation: Operation::Debit {
            id: id.into(),
            user_id: UserId(7),
            amount: Ndn::new(amount).unwrap(),
            reason: "sword".into(),
            reference: None,
            metadata: None,
        },
        key: None,
    }
}

fn keyed(mut request: Request, key: &str, fingerprint: &str) -> Request {
    request.key = Some(IdempotencyKey {
        api_key_id: 1,
        key: key.into(),
        fingerprint: fingerprint.into(),
    });
    request
}

fn hold(id: &str, amount: i64, expires_at: i64) -> Request {
    Request {
        operation: Operation::Hold {
            id: id.into(),
            user_id: UserId(7),
            amount: Ndn::new(amount).unwrap(),
            reason: Some("match entry".into()),
            reference: None,
            expires_at,
            owner: 1,
        },
        key: None,
    }
}

/// Hold `h1` of buyer 7: 100 NDN, active until just after `NOW`.
fn active_hold(owner: Option<i64>) -> Hold {
    Hold {
        id: "h1".into(),
        user_id: UserId(7),
        amount: Ndn::new(100).unwrap(),
        status: HoldStatus::Active,
        captured: None,
        reason: None,
        reference: None,
        created_at: 0,
        expires_at: NOW + 1,
        owner,
    }
}

fn plain(operation: Operation) -> Request {
    Request {
        operation,
        key: None,
    }
}

fn funds_after(decision: &Decision) -> Funds {
    match decision {
        Decision::Applied(change) => change.receipt.funds(),
        Decision::Repeated(receipt) => receipt.funds(),
        other => panic!("not applied: {other:?}"),
    }
}

#[test]
fn debits_spend_what_is_available_and_never_overdraw() {
    let requests: Vec<Request> = (0..7).map(|i| debit(&format!("d{i}"), 100)).collect();
    let decisions = decide(&requests, &books(500, 0), NOW);
    let applied = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Applied(_)))
        .count();
    assert_eq!(applied, 5);
    assert_eq!(funds_after(&decisions[4]).balance, 0);
    assert_eq!(
        decisions[5],
        Decision::Refused(Refusal::InsufficientFunds { available: 0 })
    );
    let Decision::Applied(change) = &decisions[0] else {
        unreachable!()
    };
    let transfer = change.transfer.as_ref().unwrap();
    assert_eq!(
        (transfer.from, transfer.to, transfer.amount),
        (
            Account::Buyer(UserId(7)),
            Account::Spent,
            Ndn::new(100).unwrap()
        )
    );
}

#[test]
fn held_ndn_cannot_be_debited() {
    let decisions = decide(&[debit("d", 300)], &books(500, 300), NOW);
    assert_eq!(
        decisions[0],
        Decision::Refused(Refusal::InsufficientFunds { available: 200 })
    );
}

#[test]
fn the_same_key_answers_the_same_and_another_request_under_it_is_refused() {
    let first = keyed(debit("d1", 100), "k", "f1");
    let again = keyed(debit("d2", 100), "k", "f1");
    let other = keyed(debit("d3", 200), "k", "f2");
    let decisions = decide(&[first, again, other], &books(500, 0), NOW);
    let Decision::Applied(change) = &decisions[0] else {
        panic!("{decisions:?}")
    };
    assert_eq!(decisions[1], Decision::Repeated(change.receipt.clone()));
    assert_eq!(decisions[2], Decision::Refused(Refusal::KeyReused));
    // StoredAnswer from an earlier batch, too.
    let mut earlier = books(400, 0);
    earlier.remembered.insert(
        (1, "k".into()),
        StoredAnswer {
            fingerprint: "f1".into(),
            receipt: change.receipt.clone(),
        },
    );
    let decisions = decide(&[keyed(debit("d4", 100), "k", "f1")], &earlier, NOW);
    assert_eq!(decisions[0], Decision::Repeated(change.receipt.clone()));
}

#[test]
fn a_hold_reserves_then_capture_spends_part_and_releases_the_rest() {
    let decisions = decide(
        &[
            hold("h1", 300, NOW + 60_000),
            debit("d", 300),
            plain(Operation::Capture {
                hold_id: "h1".into(),
                amount: Some(Ndn::new(120).unwrap()),
                by: 1,
            }),
            plain(Operation::Capture {
                hold_id: "h1".into(),
                amount: Some(Ndn::new(120).unwrap()),
                by: 1,
            }),
            debit("d2", 380),
        ],
        &books(500, 0),
        NOW,
    );
    assert_eq!(
        funds_after(&decisions[0]),
        Funds {
            balance: 500,
            held: 300
        }
    );
    assert_eq!(
        decisions[1],
        Decision::Refused(Refusal::InsufficientFunds { available: 200 })
    );
    assert_eq!(
        funds_after(&decisions[2]),
        Funds {
            balance: 380,
            held: 0
        }
    );
    let Decision::Applied(change) = &decisions[2] else {
        unreachable!()
    };
    assert_eq!(change.held, -300);
    assert_eq!(
        change.transfer.as_ref().unwrap().amount,
        Ndn::new(120).unwrap()
    );
    assert!(
        matches!(decisions[3], Decision::Repeated(_)),
        "a capture repeated is answered again"
    );
    assert_eq!(funds_after(&decisions[4]).balance, 0);
}

#[test]
fn voided_and_expired_holds_cannot_be_captured() {
    let with_hold = |status: HoldStatus, expires_at: i64| {
        let mut books = books(500, if status == HoldStatus::Active { 100 } else { 0 });
        books.holds.insert(
            "h".into(),
            Hold {
                id: "h".into(),
                user_id: UserId(7),
                amount: Ndn::new(100).unwrap(),
                status,
                captured: None,
                reason: None,
                reference: None,
                created_at: 0,
                expires_at,
                owner: Some(1),
            },
        );
        books
    };
    let capture = plain(Operation::Capture {
        hold_id: "h".into(),
        amount: None,
        by: 1,
    });
    let void = plain(Operation::Void {
        hold_id: "h".into(),
        by: 1,
    });
    let decisions = decide(
        &[void.clone(), void.clone(), capture.clone()],
        &with_hold(HoldStatus::Active, NOW + 1),
        NOW,
    );
    assert_eq!(
        funds_after(&decisions[0]),
        Funds {
            balance: 500,
            held: 0
        }
    );
    assert!(
        matches!(decisions[1], Decision::Repeated(_)),
        "void is idempotent"
    );
    assert_eq!(
        decisions[2],
        Decision::Refused(Refusal::HoldClosed {
            status: HoldStatus::Voided
        })
    );
    // Past its time: refused, and released by the expiry.
    let expired = with_hold(HoldStatus::Active, NOW);
    let decisions = decide(
        &[
            capture.clone(),
            plain(Operation::Expire {
                hold_id: "h".into(),
            }),
            plain(Operation::Expire {
                hold_id: "h".into(),
            }),
        ],
        &expired,
        NOW,
    );
    assert_eq!(
        decisions[0],
        Decision::Refused(Refusal::HoldClosed {
            status: HoldStatus::Expired
        })
    );
    assert_eq!(
        funds_after(&decisions[1]),
        Funds {
            balance: 500,
            held: 0
        }
    );
    assert_eq!(decisions[2], Decision::NothingToExpire);
    // Not yet due: the expiry leaves it.
    let decisions = decide(
        &[plain(Operation::Expire {
            hold_id: "h".into(),
        })],
        &with_hold(HoldStatus::Active, NOW + 1),
        NOW,
    );
    assert_eq!(decisions[0], Decision::NothingToExpire);
    let decisions = decide(
        &[plain(Operation::Capture {
            hold_id: "h".into(),
            amount: Some(Ndn::new(101).unwrap()),
            by: 1,
        })],
        &with_hold(HoldStatus::Active, NOW + 1),
        NOW,
    );
    assert_eq!(
        decisions[0],
        Decision::Refused(Refusal::CaptureExceedsHold { held: 100 })
    );
}

#[test]
fn only_the_key_that_made_a_hold_settles_it() {
    let by = |key: i64| {
        [
            plain(Operation::Capture {
                hold_id: "h1".into(),
                amount: None,
                by: key,
            }),
            plain(Operation::Void {
                hold_id: "h1".into(),
                by: key,
            }),
        ]
    };
    let mut requests = vec![hold("h1", 100, NOW + 60_000)];
    requests.extend(by(2));
    requests.extend(by(1));
    let decisions = decide(&requests, &books(500, 0), NOW);
    assert_eq!(decisions[1], Decision::Refused(Refusal::HoldOfAnotherKey));
    assert_eq!(decisions[2], Decision::Refused(Refusal::HoldOfAnotherKey));
    assert_eq!(
        funds_after(&decisions[3]).balance,
        400,
        "its own key captures"
    );
    // A hold made before holds had owners: any key.
    let mut earlier = books(500, 100);
    earlier.holds.insert("h1".into(), active_hold(None));
    assert!(matches!(
        decide(&by(2)[..1], &earlier, NOW)[0],
        Decision::Applied(_)
    ));
}

#[test]
fn after_a_clawback_a_capture_reports_available_as_the_account_does() {
    // 100 NDN, all held; a refund then took the 100 back: balance 0, available -100.
    let mut clawed = books(0, 100);
    clawed.holds.insert("h1".into(), active_hold(Some(1)));
    assert_eq!(clawed.funds[&UserId(7)].available(), -100);
    let capture = |amount| {
        plain(Operation::Capture {
            hold_id: "h1".into(),
            amount,
            by: 1,
        })
    };
    let decisions = decide(
        &[capture(None), capture(Some(Ndn::new(1).unwrap()))],
        &clawed,
        NOW,
    );
    for decision in &decisions {
        assert_eq!(
            *decision,
            Decision::Refused(Refusal::InsufficientFunds { available: -100 })
        );
    }
    // Half clawed back: what the hold still covers can be captured, no more.
    let mut half = clawed.clone();
    half.funds.insert(
        UserId(7),
        Funds {
            balance: 50,
            held: 100,
        },
    );
    let decisions = decide(
        &[
            capture(Some(Ndn::new(51).unwrap())),
            capture(Some(Ndn::new(50).unwrap())),
        ],
        &half,
        NOW,
    );
    assert_eq!(
        decisions[0],
        Decision::Refused(Refusal::InsufficientFunds { available: -50 })
    );
    assert_eq!(
        funds_after(&decisions[1]),
        Funds {
            balance: 0,
            held: 0
        }
    );
    // A void releases it: available back to the balance.
    let void = plain(Operation::Void {
        hold_id: "h1".into(),
        by: 1,
    });
    assert_eq!(
        funds_after(&decide(&[void], &clawed, NOW)[0]),
        Funds {
            balance: 0,
            held: 0
        }
    );
}

#[test]
fn a_balance_never_passes_what_the_books_can_count() {
    let grant = plain(Operation::Grant {
        id: "g".into(),
        user_id: UserId(7),
        amount: Ndn::new(10).unwrap(),
        reason: "bonus".into(),
    });
    let decisions = decide(std::slice::from_ref(&grant), &books(i64::MAX - 5, 0), NOW);
    assert_eq!(decisions[0], Decision::Refused(Refusal::BalanceLimit));
    assert_eq!(
        funds_after(&decide(&[grant], &books(i64::MAX - 10, 0), NOW)[0]).balance,
        i64::MAX
    );
}

#[test]
fn grants_need_a_known_buyer_and_add_to_the_balance() {
    let grant = |user_id| {
        plain(Operation::Grant {
            id: "g".into(),
            user_id,
            amount: Ndn::new(50).unwrap(),
            reason: "sorry for the outage".into(),
        })
    };
    let decisions = decide(&[grant(UserId(7)), grant(UserId(8))], &books(0, 0), NOW);
    assert_eq!(funds_after(&decisions[0]).balance, 50);
    assert_eq!(decisions[1], Decision::Refused(Refusal::UnknownAccount));
}

#[test]
fn hold_statuses_have_fixed_names() {
    let statuses = [
        (HoldStatus::Active, "active"),
        (HoldStatus::Captured, "captured"),
        (HoldStatus::Voided, "voided"),
        (HoldStatus::Expired, "expired"),
    ];
    for (status, name) in statuses {
        assert_eq!(status.as_str(), name);
        assert_eq!(HoldStatus::parse(name), Some(status));
    }
    assert_eq!(HoldStatus::parse("Active"), None);
    assert_eq!(HoldStatus::parse(""), None);
}

/// What the writer locks and reads for a request: its buyer, or its hold.
#[test]
fn a_request_names_its_buyer_or_its_hold() {
    let grant = Operation::Grant {
        id: "g".into(),
        user_id: UserId(7),
        amount: Ndn::new(1).unwrap(),
        reason: "r".into(),
    };
    for buyer_named in [debit("d", 1).operation, grant, hold("h", 1, NOW).operation] {
        assert_eq!(buyer_named.user_id(), Some(UserId(7)), "{buyer_named:?}");
        assert_eq!(buyer_named.hold_id(), None, "{buyer_named:?}");
    }
    let hold_named = [
        Operation::Capture {
            hold_id: "h1".into(),
            amount: None,
            by: 1,
        },
        Operation::Void {
            hold_id: "h1".into(),
            by: 1,
        },
        Operation::Expire {
            hold_id: "h1".into(),
        },
    ];
    for operation in hold_named {
        assert_eq!(operation.user_id(), None, "{operation:?}");
        assert_eq!(
            operation.hold_id().map(HoldId::as_str),
            Some("h1"),
            "{operation:?}"
        );
    }
}

#[test]
fn every_receipt_names_its_buyer() {
    let mut books = books(500, 0);
    books.funds.insert(UserId(8), Funds::default());
    books.holds.insert("h1".into(), active_hold(Some(1)));
    let grant = plain(Operation::Grant {
        id: "g".into(),
        user_id: UserId(8),
        amount: Ndn::new(5).unwrap(),
        reason: "r".into(),
    });
    let decisions = decide(
        &[debit("d", 10), grant, hold("h2", 10, NOW + 1)],
        &books,
        NOW,
    );
    let buyers: Vec<UserId> = decisions
        .iter()
        .map(|decision| match decision {
            Decision::Applied(change) => change.receipt.user_id(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(buyers, [UserId(7), UserId(8), UserId(7)]);
}

/// The words the console and the command line show for a refusal.
#[test]
fn refusals_say_why_in_words() {
    let words = [
        (Refusal::UnknownAccount, "no such buyer"),
        (Refusal::UnknownHold, "no such hold"),
        (
            Refusal::InsufficientFunds { available: -20 },
            "insufficient funds (-20 NDN available)",
        ),
        (Refusal::KeyReused, "the id was used for another request"),
        (
            Refusal::HoldClosed {
                status: HoldStatus::Expired,
            },
            "the hold is expired",
        ),
        (
            Refusal::CaptureExceedsHold { held: 100 },
            "the capture exceeds the hold (100 NDN)",
        ),
        (
            Refusal::HoldOfAnotherKey,
            "the hold was made with another key",
        ),
        (
            Refusal::BalanceLimit,
            "the balance would pass the largest the books can count",
        ),
    ];
    for (refusal, text) in words {
        assert_eq!(refusal.describe(), text);
    }
}

/// A hold may reserve all that is available, not a unit more.
#[test]
fn a_hold_reserves_up_to_what_is_available() {
    let decisions = decide(&[hold("h1", 500, NOW + 1)], &books(500, 0), NOW);
    assert_eq!(
        funds_after(&decisions[0]),
        Funds {
            balance: 500,
            held: 500
        }
    );
    let decisions = decide(&[hold("h1", 501, NOW + 1)], &books(500, 0), NOW);
    assert_eq!(
        decisions[0],
        Decision::Refused(Refusal::InsufficientFunds { available: 500 })
    );
}

/// A captured hold answers the same capture again, but a capture of another amount is
/// refused: it is not the request that was answered.
#[test]
fn a_captured_hold_repeats_only_the_same_capture() {
    let capture = |amount| {
        plain(Operation::Capture {
            hold_id: "h1".into(),
            amount,
            by: 1,
        })
    };
    let mut books = books(500, 100);
    books.holds.insert("h1".into(), active_hold(Some(1)));
    let decisions = decide(
        &[
            capture(Some(Ndn::new(60).unwrap())),
            capture(Some(Ndn::new(60).unwrap())),
            capture(None),
            capture(Some(Ndn::new(50).unwrap())),
        ],
        &books,
        NOW,
    );
    assert!(
        matches!(decisions[0], Decision::Applied(_)),
        "{decisions:?}"
    );
    assert!(
        matches!(decisions[1], Decision::Repeated(_)),
        "{decisions:?}"
    );
    assert!(
        matches!(decisions[2], Decision::Repeated(_)),
        "{decisions:?}"
    );
    assert_eq!(
        decisions[3],
        Decision::Refused(Refusal::HoldClosed {
            status: HoldStatus::Captured
        })
    );
}

/// A void and an expiry each release exactly what the hold reserved.
#[test]
fn a_void_or_an_expiry_releases_the_held_amount() {
    for operation in [
        Operation::Void {
            hold_id: "h1".into(),
            by: 1,
        },
        Operation::Expire {
            hold_id: "h1".into(),
        },
    ] {
        let mut books = books(500, 100);
        books.holds.insert("h1".into(), active_hold(Some(1)));
        let decisions = decide(&[plain(operation.clone())], &books, NOW + 1);
        let Decision::Applied(change) = &decisions[0] else {
            panic!("{operation:?}: {decisions:?}")
        };
        assert_eq!(change.held, -100, "{operation:?}");
        assert_eq!(
            change.receipt.funds(),
            Funds {
                balance: 500,
                held: 0
            }
        );
    }
}
