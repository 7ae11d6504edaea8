"""The contract's decision rules 1-6 and retraction, each in isolation and in order."""

from __future__ import annotations

import dataclasses
import pickle

from stockguard.config.settings import RuleSettings, Settings
from stockguard.state.decision import APPROVED, RETRACTED, SUPPRESSED, budget_share, partition_of
from tests.helpers import HOUR, MIN, T0, Harness, level, order, product, trigger


def rules(**kw: object) -> RuleSettings:
    return dataclasses.replace(Settings().rules, **kw)  # type: ignore[arg-type]


def stocked(*skus: str, qty: int = 100) -> Harness:
    h = Harness()
    for s in skus:
        h.product(product(s))
        h.stock(level(s, qty))
    return h


def test_an_ordinary_trigger_is_sent_with_the_contract_fields() -> None:
    h = stocked("A")
    kind, key, msg = h.trigger(trigger("t1", "c1", ["A"]))
    assert (kind, key) == (APPROVED, "c1")
    assert msg["decision"] == "send" and msg["skus"] == ["A"] and msg["original_skus"] == ["A"]
    assert msg["substitutions"] == [] and msg["decided_ts"] == 1
    assert msg["trigger_id"] == "t1" and msg["channel"] == "email" and msg["consent"] is True


def test_rule1_duplicate_trigger_id_is_suppressed_even_if_first_was_suppressed() -> None:
    h = stocked("A")
    assert h.trigger(trigger("t1", "c1", ["A"], consent=False))[2]["reason"] == "no_consent"
    kind, _, msg = h.trigger(trigger("t1", "c1", ["A"], ts=T0 + 23 * HOUR))
    assert (kind, msg["reason"], msg["decision"]) == (SUPPRESSED, "duplicate", "suppress")


def test_rule1_dedup_memory_lasts_the_dedup_window_then_expires() -> None:
    h = stocked("A")
    h.trigger(trigger("t1", "c1", ["A"], consent=False))
    h.stock(level("A", 100, ts=T0 + 25 * HOUR))
    assert h.trigger(trigger("t1", "c1", ["A"], ts=T0 + 25 * HOUR, consent=False))[2]["reason"] == "no_consent"


def test_rule2_consent_must_be_exactly_true() -> None:
    h = stocked("A")
    for i, consent in enumerate([False, None, "true", 1]):
        assert h.trigger(trigger(f"t{i}", "c1", ["A"], consent=consent))[2]["reason"] == "no_consent"


def test_rule2_runs_before_the_cap() -> None:
    h = stocked("A")
    h.trigger(trigger("t1", "c1", ["A"]))
    assert h.trigger(trigger("t2", "c1", ["A"], ts=T0 + 1, consent=False))[2]["reason"] == "no_consent"


def test_rule3_frequency_cap_counts_approvals_in_the_window() -> None:
    h = stocked("A", "B")
    assert h.trigger(trigger("t1", "c1", ["A"]))[0] == APPROVED
    assert h.trigger(trigger("t2", "c1", ["B"], ts=T0 + 15 * HOUR))[2]["reason"] == "frequency_capped"
    assert h.trigger(trigger("t3", "c1", ["B"], ts=T0 + 16 * HOUR + 1))[0] == APPROVED
    # Another customer is not capped by c1's sends.
    assert h.trigger(trigger("t4", "c2", ["B"], ts=T0 + 15 * HOUR))[0] == APPROVED


def test_rule3_suppressed_triggers_do_not_count_and_cap_count_is_a_setting() -> None:
    h = Harness(rules(cap_count=2))
    h.product(product("A"))
    h.stock(level("A", 100))
    h.trigger(trigger("t0", "c1", ["A"], consent=False))
    assert h.trigger(trigger("t1", "c1", ["A"]))[0] == APPROVED
    assert h.trigger(trigger("t2", "c1", ["A"], ts=T0 + 1))[0] == APPROVED
    assert h.trigger(trigger("t3", "c1", ["A"], ts=T0 + 2))[2]["reason"] == "frequency_capped"


def test_rule3_back_in_stock_is_exempt_and_does_not_count() -> None:
    h = stocked("A", "B")
    assert h.trigger(trigger("t1", "c1", ["A"], kind="back_in_stock"))[0] == APPROVED
    assert h.trigger(trigger("t2", "c1", ["B"], ts=T0 + 1))[0] == APPROVED
    assert h.trigger(trigger("t3", "c1", ["A"], ts=T0 + 2, kind="back_in_stock"))[0] == APPROVED
    assert h.trigger(trigger("t4", "c1", ["A"], ts=T0 + 3))[2]["reason"] == "frequency_capped"


def test_rule4_every_sku_bought_in_the_lookback_suppresses() -> None:
    h = stocked("A", "B")
    h.order(order("o1", "c1", [("A", 1), ("B", 1)], ts=T0 + HOUR))
    kind, _, msg = h.trigger(trigger("t1", "c1", ["A", "B"], ts=T0 + 2 * HOUR))
    assert (kind, msg["reason"]) == (SUPPRESSED, "already_purchased")


def test_rule4_bought_skus_are_dropped_from_a_trigger_that_keeps_others() -> None:
    h = stocked("A", "B")
    h.order(order("o1", "c1", [("A", 1)], ts=T0 + HOUR))
    kind, _, msg = h.trigger(trigger("t1", "c1", ["A", "B"], ts=T0 + 2 * HOUR))
    assert kind == APPROVED and msg["decision"] == "send" and msg["skus"] == ["B"]
    assert msg["original_skus"] == ["A", "B"]
    assert msg["dropped"] == [{"sku": "A", "reason": "already_purchased"}]


def test_rule4_cancelled_orders_old_orders_and_other_customers_do_not_count() -> None:
    h = stocked("A")
    h.order(order("o1", "c1", [("A", 1)], ts=T0))
    h.order(order("o1", "c1", [("A", 1)], ts=T0 + MIN, status="cancelled"))
    h.order(order("o2", "c2", [("A", 1)], ts=T0 + MIN))
    assert h.trigger(trigger("t1", "c1", ["A"], ts=T0 + HOUR))[0] == APPROVED
    h2 = stocked("A")
    h2.order(order("o1", "c1", [("A", 1)], ts=T0))
    h2.stock(level("A", 100, ts=T0 + 7 * 24 * HOUR + 1))
    assert h2.trigger(trigger("t1", "c1", ["A"], ts=T0 + 7 * 24 * HOUR + 1))[0] == APPROVED


def test_rule4_runs_before_the_stock_check() -> None:
    h = stocked("A", qty=0)
    h.order(order("o1", "c1", [("A", 1)], ts=T0))
    assert h.trigger(trigger("t1", "c1", ["A"], ts=T0 + 1))[2]["reason"] == "already_purchased"


def test_rule5_out_of_stock_without_substitute_is_suppressed() -> None:
    h = stocked("A", qty=0)
    kind, _, msg = h.trigger(trigger("t1", "c1", ["A"]))
    assert (kind, msg["reason"]) == (SUPPRESSED, "out_of_stock")


def test_rule5_inactive_or_offline_catalog_items_are_unavailable() -> None:
    h = stocked("A", "B")
    h.product(product("A", active=False, ts=T0 + 1))
    h.product(product("B", online=False, ts=T0 + 1))
    assert h.trigger(trigger("t1", "c1", ["A"], ts=T0 + 2))[2]["reason"] == "out_of_stock"
    assert h.trigger(trigger("t2", "c2", ["B"], ts=T0 + 2))[2]["reason"] == "out_of_stock"


def test_rule5_unknown_stock_is_available_by_default_and_configurable() -> None:
    h = Harness()
    assert h.trigger(trigger("t1", "c1", ["NEW"]))[0] == APPROVED
    strict = Harness(rules(unknown_stock_available=False))
    assert strict.trigger(trigger("t1", "c1", ["NEW"]))[2]["reason"] == "out_of_stock"


def test_rule5_send_budget_is_sends_per_unit_times_atp_over_the_window() -> None:
    h = Harness(rules(sends_per_unit=2, cap_count=100))
    h.product(product("A"))
    h.stock(level("A", 2))
    decisions = [h.trigger(trigger(f"t{i}", f"c{i}", ["A"], ts=T0 + i))[0] for i in range(5)]
    assert decisions == [APPROVED] * 4 + [SUPPRESSED]
    assert h.trigger(trigger("t9", "c9", ["A"], ts=T0 + 10))[2]["reason"] == "stock_budget_exhausted"
    # A day later the window has moved on.
    h.stock(level("A", 2, ts=T0 + 24 * HOUR + 10))
    assert h.trigger(trigger("t10", "c10", ["A"], ts=T0 + 24 * HOUR + 10))[0] == APPROVED


def test_rule5_budget_is_split_exactly_across_partitions() -> None:
    for total in range(0, 50):
        for parts in (1, 2, 3, 4, 7):
            shares = [budget_share(total, parts, i) for i in range(parts)]
            assert sum(shares) == total and max(shares) - min(shares) <= 1


def test_rule5_catalog_substitute_replaces_an_unavailable_sku() -> None:
    h = Harness()
    h.product(product("RED", substitutes=["BLUE"]))
    h.product(product("BLUE"))
    h.stock(level("RED", 0))
    h.stock(level("BLUE", 5))
    kind, _, msg = h.trigger(trigger("t1", "c1", ["RED"]))
    assert kind == APPROVED and msg["decision"] == "retarget"
    assert msg["skus"] == ["BLUE"] and msg["original_skus"] == ["RED"]
    assert msg["substitutions"] == [{"from": "RED", "to": "BLUE", "reason": "out_of_stock"}]


def test_rule5_catalog_substitutes_take_precedence_over_the_group() -> None:
    h = Harness()
    h.product(product("RED", substitutes=["BLUE"]))
    h.product(product("BLUE", group="other"))
    h.product(product("GREEN"))
    h.stock(level("RED", 0))
    h.stock(level("BLUE", 1))
    h.stock(level("GREEN", 500))
    assert h.trigger(trigger("t1", "c1", ["RED"]))[2]["skus"] == ["BLUE"]


def test_rule5_same_group_and_size_when_no_substitutes_are_listed() -> None:
    h = Harness()
    h.product(product("RED-M", group="tee", size="M"))
    h.product(product("BLUE-L", group="tee", size="L"))
    h.product(product("GRN-M", group="tee", size="M"))
    h.product(product("HAT-M", group="hat", size="M"))
    for s, q in (("RED-M", 0), ("BLUE-L", 99), ("GRN-M", 3), ("HAT-M", 99)):
        h.stock(level(s, q))
    assert h.trigger(trigger("t1", "c1", ["RED-M"]))[2]["skus"] == ["GRN-M"]


def test_rule5_substitutes_rank_by_cover_then_margin_then_sku() -> None:
    h = Harness(rules(cap_count=100))
    for s, margin in (("X", 1.0), ("S1", 5.0), ("S2", 9.0), ("S3", 9.0), ("S4", 9.0)):
        h.product(product(s, unit_cost=20.0 - margin))
    h.stock(level("X", 0))
    for s in ("S1", "S2", "S3", "S4"):
        h.stock(level(s, 100))
    # S4 sells fast: fewer days of cover than the others.
    h.order(order("o1", "c9", [("S4", 50, "WH-PARIS")], ts=T0 + MIN))
    # S1, S2, S3 have infinite cover (no sales): margin picks S2/S3, then the sku id.
    assert h.trigger(trigger("t1", "c1", ["X"], ts=T0 + 2 * MIN))[2]["skus"] == ["S2"]
    h.order(order("o2", "c9", [("S2", 1, "WH-PARIS")], ts=T0 + 3 * MIN))
    h.order(order("o3", "c9", [("S3", 1, "WH-PARIS")], ts=T0 + 3 * MIN))
    h.order(order("o4", "c9", [("S1", 1, "WH-PARIS")], ts=T0 + 3 * MIN))
    # Now all sold: S1 has 99 units at 1/day = 99 days, S2/S3 also 99, S4 50 at 50/day.
    assert h.trigger(trigger("t2", "c2", ["X"], ts=T0 + 4 * MIN))[2]["skus"] == ["S2"]
    h.stock(level("S1", 1000, ts=T0 + 5 * MIN))
    assert h.trigger(trigger("t3", "c3", ["X"], ts=T0 + 6 * MIN))[2]["skus"] == ["S1"]


def test_rule5_substitutes_skip_unavailable_bought_and_already_listed_skus() -> None:
    h = Harness()
    for s in ("RED", "BLUE", "GREEN", "PINK", "GREY"):
        h.product(product(s, substitutes=["BLUE", "GREEN", "PINK", "GREY"] if s == "RED" else None))
    h.stock(level("RED", 0))
    h.stock(level("BLUE", 0))
    h.stock(level("GREEN", 1000))
    h.stock(level("PINK", 5))
    h.stock(level("GREY", 500))
    h.order(order("o1", "c1", [("GREEN", 1)], ts=T0))
    msg = h.trigger(trigger("t1", "c1", ["RED", "PINK"], ts=T0 + 1))[2]
    # BLUE is out, GREEN was bought, PINK is already in the trigger: GREY replaces RED.
    assert msg["skus"] == ["GREY", "PINK"]


def test_rule5_no_substitution_for_back_in_stock() -> None:
    h = Harness()
    h.product(product("RED", substitutes=["BLUE"]))
    h.product(product("BLUE"))
    h.stock(level("RED", 0))
    h.stock(level("BLUE", 5))
    assert h.trigger(trigger("t1", "c1", ["RED"], kind="back_in_stock"))[2]["reason"] == "out_of_stock"


def test_rule5_unreplaceable_skus_are_dropped_and_the_rest_sent() -> None:
    h = stocked("A", "B")
    h.stock(level("A", 0, ts=T0 + 1))
    msg = h.trigger(trigger("t1", "c1", ["A", "B"], ts=T0 + 2))[2]
    assert msg["decision"] == "send" and msg["skus"] == ["B"]
    assert msg["dropped"] == [{"sku": "A", "reason": "out_of_stock"}]


def test_rule5_no_sku_left_takes_the_reason_of_the_first_dropped_sku() -> None:
    h = Harness(rules(sends_per_unit=1, cap_count=100))
    h.product(product("A", group="a"))
    h.product(product("B", group="b"))
    h.stock(level("A", 1))
    h.stock(level("B", 0))
    h.trigger(trigger("t0", "c0", ["A"]))
    kind, _, msg = h.trigger(trigger("t1", "c1", ["A", "B"], ts=T0 + 1))
    assert (kind, msg["reason"]) == (SUPPRESSED, "stock_budget_exhausted")
    kind, _, msg = h.trigger(trigger("t2", "c2", ["B", "A"], ts=T0 + 2))
    assert (kind, msg["reason"]) == (SUPPRESSED, "out_of_stock")


def test_retraction_when_a_sent_sku_runs_out_within_the_window_once() -> None:
    h = stocked("A", "B", qty=3)
    h.trigger(trigger("t1", "c1", ["A", "B"], ts=T0))
    h.trigger(trigger("t2", "c2", ["A"], ts=T0 + HOUR))
    out = h.order(order("o1", "c9", [("A", 3, "WH-PARIS")], ts=T0 + 4 * HOUR + MIN))
    # t1 was approved more than 4 h before: outside the retract window.
    assert [(k, m["trigger_id"], m["sku"], m["reason"], m["ts"]) for k, _, m in out] == [
        (RETRACTED, "t2", "A", "out_of_stock", T0 + 4 * HOUR + MIN)
    ]
    assert set(out[0][2]) >= {"trigger_id", "customer_id", "campaign_id", "sku", "reason", "ts"}
    assert h.stock(level("A", 5, ts=T0 + 4 * HOUR + 2 * MIN)) == []
    assert h.stock(level("A", 0, ts=T0 + 4 * HOUR + 3 * MIN)) == []


def test_retraction_is_once_per_trigger_even_when_a_second_sku_runs_out() -> None:
    h = stocked("A", "B", qty=3)
    h.trigger(trigger("t1", "c1", ["A", "B"], ts=T0))
    assert len(h.stock(level("A", 0, ts=T0 + MIN))) == 1
    assert h.stock(level("B", 0, ts=T0 + 2 * MIN)) == []


def test_retraction_when_the_catalog_takes_a_sku_offline() -> None:
    h = stocked("A")
    h.trigger(trigger("t1", "c1", ["A"]))
    out = h.product(product("A", online=False, ts=T0 + MIN))
    assert [m["trigger_id"] for _, _, m in out] == ["t1"]


def test_partition_of_is_stable_and_spread() -> None:
    assert partition_of("cust-1", 1) == 0
    assert partition_of("cust-1", 8) == partition_of("cust-1", 8)
    spread = {partition_of(f"cust-{i}", 8) for i in range(200)}
    assert spread == set(range(8))


def test_only_the_owning_partition_records_a_customers_purchases() -> None:
    owner = partition_of("c1", 2)
    h_own = Harness(index=owner, partitions=2)
    h_other = Harness(index=1 - owner, partitions=2)
    for h in (h_own, h_other):
        h.stock(level("A", 10))
        h.order(order("o1", "c1", [("A", 1, "WH-PARIS")], ts=T0 + MIN))
        assert h.atp("A") == 9
    assert "c1" in h_own.decider.state.customers
    assert "c1" not in h_other.decider.state.customers


def test_state_is_evicted_after_its_ttls() -> None:
    h = stocked("A")
    h.trigger(trigger("t1", "c1", ["A"]))
    h.order(order("o1", "c2", [("A", 1)], ts=T0 + MIN))
    st = h.decider.state
    assert st.sizes()["customers"] == 2 and st.sizes()["decided_triggers"] == 1
    h.stock(level("A", 100, ts=T0 + 8 * 24 * HOUR))
    assert st.sizes()["customers"] == 0
    assert st.sizes()["decided_triggers"] == 0 and st.sizes()["orders"] == 0


def test_a_customer_moved_to_a_later_expiry_bucket_outlives_its_earlier_one() -> None:
    h = stocked("A", "B")
    h.trigger(trigger("t1", "c1", ["A"]))  # expires with the 16 h cap window
    h.order(order("o1", "c1", [("B", 1)], ts=T0 + 2 * HOUR))  # now kept for the 7-day lookback
    h.stock(level("A", 100, ts=T0 + 20 * HOUR))  # the first bucket's hour has passed
    st = h.decider.state
    assert "c1" in st.customers
    assert h.trigger(trigger("t2", "c1", ["B"], ts=T0 + 21 * HOUR))[2]["reason"] == "already_purchased"
    h.stock(level("A", 100, ts=T0 + 8 * 24 * HOUR))
    assert "c1" not in st.customers
    assert all(b > (T0 + 8 * 24 * HOUR) // HOUR for b in st.wheel)  # stale entries went too


def test_a_customer_with_one_approval_is_held_as_an_int_and_grows_on_more() -> None:
    h = Harness(rules(cap_count=3))
    for sku in ("A", "B"):
        h.product(product(sku))
        h.stock(level(sku, 100))
    st = h.decider.state
    h.trigger(trigger("t1", "c1", ["A"]))
    assert st.customers["c1"] == T0  # the approval's event time, no object
    h.trigger(trigger("t2", "c1", ["A"], ts=T0 + HOUR))
    grown = st.customers["c1"]
    assert not isinstance(grown, int) and grown.approvals == [T0, T0 + HOUR]
    h.trigger(trigger("t3", "c2", ["A"]))
    h.order(order("o1", "c2", [("B", 1)], ts=T0 + MIN))
    bought = st.customers["c2"]
    assert not isinstance(bought, int) and bought.approvals == T0 and bought.orders is not None
    # The cap still counts an approval held as an int, and rule 4 sees the order.
    h2 = stocked("A", "B")
    h2.trigger(trigger("u1", "c9", ["A"]))
    assert h2.trigger(trigger("u2", "c9", ["B"], ts=T0 + HOUR))[2]["reason"] == "frequency_capped"
    assert h.trigger(trigger("t4", "c2", ["B"], ts=T0 + 2 * MIN))[2]["reason"] == "already_purchased"


def test_state_survives_a_pickle_round_trip() -> None:
    h = stocked("A", "B")
    h.trigger(trigger("t1", "c1", ["A"]))
    h.order(order("o1", "c1", [("B", 1)], ts=T0 + MIN))
    back = pickle.loads(pickle.dumps(h.decider.state))
    h.decider.state = back
    assert h.trigger(trigger("t1", "c1", ["A"], ts=T0 + 2 * MIN))[2]["reason"] == "duplicate"
    assert h.trigger(trigger("t2", "c1", ["A"], ts=T0 + 2 * MIN))[2]["reason"] == "frequency_capped"


def test_resync_views_sends_every_known_sku_again_after_a_restart() -> None:
    from stockguard.state.decision import Decider

    h = stocked("A", "B")
    tracked = Decider(h.decider.state, h.rules, lambda: 1, track_views=True)
    assert tracked.take_views() == []
    tracked.resync_views()
    assert sorted(v["sku"] for v in tracked.take_views()) == ["A", "B"]
    untracked = Decider(h.decider.state, h.rules, lambda: 1)
    untracked.resync_views()
    assert untracked.dirty is None
