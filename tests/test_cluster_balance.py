"""The balancer as a pure function: hand-written cluster snapshots and what each replica does.

A small simulation at the end plays rounds of ticks (each replica applies its own plan to a
shared owner map, in varying orders) and checks the cluster converges to max - min <= 1 and
then stops moving leases: no thrash.
"""

from __future__ import annotations

import itertools
import random

from td_graph_plugin.cluster.balance import plan, target

T10 = [f"t{i:02d}" for i in range(10)]


def test_target_is_the_ceiling():
    assert target(10, 3) == 4
    assert target(9, 3) == 3
    assert target(1, 3) == 1
    assert target(0, 2) == 0
    assert target(5, 0) == 5  # no live replica known yet: this one alone


def test_alone_claims_everything():
    p = plan("a", T10, ["a"], {})
    assert p.release == [] and p.claim_limit == 10 and sorted(p.claim) == T10


def test_two_fresh_replicas_each_claim_up_to_the_ceiling():
    p = plan("a", T10, ["a", "b"], {})
    assert p.claim_limit == 5 and len(p.claim) == 10  # candidates in preference order, take 5


def test_claim_order_is_deterministic_and_differs_between_replicas():
    a1 = plan("a", T10, ["a", "b"], {}).claim
    a2 = plan("a", T10, ["b", "a"], {}).claim
    b = plan("b", T10, ["a", "b"], {}).claim
    assert a1 == a2
    assert a1 != b  # rendezvous: two replicas claiming at once start on different tenants


def test_join_makes_the_full_replica_release_half_the_difference():
    owners = {t: "a" for t in T10}  # a holds all, b just joined
    p = plan("a", T10, ["a", "b"], owners)
    assert len(p.release) == 5 and p.claim_limit == 0
    assert plan("b", T10, ["a", "b"], owners).claim_limit == 0  # nothing free yet


def test_over_the_ceiling_releases_down_to_it():
    owners = {t: "a" for t in T10}
    p = plan("a", T10, ["a", "b", "c"], owners)  # ceiling 4
    assert len(p.release) == 6


def test_balanced_within_one_does_nothing():
    owners = {t: ("a" if i < 4 else "b" if i < 7 else "c") for i, t in enumerate(T10)}  # 4, 3, 3
    for me in "abc":
        p = plan(me, T10, ["a", "b", "c"], owners)
        assert p.release == [] and p.claim_limit == 0, me


def test_free_tenants_go_to_the_least_loaded_first_and_nobody_releases_meanwhile():
    owners = {t: "a" for t in T10[:4]} | {t: "b" for t in T10[4:8]}  # 4, 4, c: 0; two free
    assert plan("c", T10, ["a", "b", "c"], owners).claim_limit == 2
    for me in "ab":  # 4 - 0 >= 2, but free tenants exist: c takes those first
        p = plan(me, T10, ["a", "b", "c"], owners)
        assert p.release == [] and p.claim_limit == 0


def test_a_dead_replicas_tenants_are_free_only_once_expired():
    # c stopped heartbeating; its leases are still valid (in owners): nobody may take them
    owners = {t: "a" for t in T10[:3]} | {t: "b" for t in T10[3:6]} | {t: "c" for t in T10[6:]}
    for me in "ab":
        assert plan(me, T10, ["a", "b"], owners).claim_limit == 0
    # expired: absent from owners -> claimed, up to the new ceiling (5)
    expired = {t: o for t, o in owners.items() if o != "c"}
    assert plan("a", T10, ["a", "b"], expired).claim_limit == 2


def test_release_picks_the_least_wanted_tenants():
    owners = {t: "a" for t in T10}
    p = plan("a", T10, ["a", "b"], owners)
    again = plan("a", T10, ["a", "b"], owners)
    assert p.release == again.release  # deterministic: the next tick drains the same ones


def test_no_tenants_no_plan():
    p = plan("a", [], ["a", "b"], {})
    assert p.release == [] and p.claim == [] and p.claim_limit == 0


def _simulate(tenants, replicas, owners, rng, rounds=40):
    """Each round every replica ticks once in a random order, applying its plan at once.
    Returns the owner map and the number of lease moves in each round."""
    moves_per_round = []
    for _ in range(rounds):
        moves = 0
        order = list(replicas)
        rng.shuffle(order)
        for me in order:
            p = plan(me, tenants, replicas, owners)
            for t in p.release:
                del owners[t]
                moves += 1
            taken = 0
            for t in p.claim:
                if taken >= p.claim_limit:
                    break
                if t not in owners:
                    owners[t] = me
                    taken += 1
                    moves += 1
        moves_per_round.append(moves)
    return owners, moves_per_round


def _spread(owners, replicas):
    counts = {r: 0 for r in replicas}
    for o in owners.values():
        if o in counts:
            counts[o] += 1
    return max(counts.values()) - min(counts.values()), counts


def test_converges_and_then_never_moves_a_lease():
    rng = random.Random(7)
    for n, r in itertools.product([1, 7, 60, 61, 100], [1, 2, 3, 5]):
        tenants = [f"t{i}" for i in range(n)]
        replicas = [f"r{i}" for i in range(r)]
        owners, moves = _simulate(tenants, replicas, {}, rng)
        spread, counts = _spread(owners, replicas)
        assert len(owners) == n, (n, r)
        assert spread <= 1, (n, r, counts)
        assert moves[-10:] == [0] * 10, (n, r, moves)


def test_join_and_leave_rebalance_without_thrash():
    rng = random.Random(11)
    tenants = [f"t{i}" for i in range(60)]
    owners, _ = _simulate(tenants, ["a", "b"], {}, rng)
    # c joins
    owners, moves = _simulate(tenants, ["a", "b", "c"], owners, rng)
    assert _spread(owners, ["a", "b", "c"])[0] <= 1
    assert sum(moves) <= 2 * (20 + 2)  # a move is a release plus a claim: c needs 20 tenants
    assert moves[-10:] == [0] * 10
    # b leaves (its leases expire: removed from the map)
    owners = {t: o for t, o in owners.items() if o != "b"}
    owners, moves = _simulate(tenants, ["a", "c"], owners, rng)
    spread, counts = _spread(owners, ["a", "c"])
    assert spread <= 1 and len(owners) == 60, counts
    assert moves[-10:] == [0] * 10
