"""Loss recovery on its own: NewReno (RFC 6582), SACK recovery (RFC 6675)
and PRR (RFC 6937), as the decisions the connection carries out."""
import math

import pytest

from aiotcp.core.recovery import ACTIONS, Recovery

NOTHING, ENTER, REPAIR, RESEND, INFLATE, PARTIAL, END = (
    ACTIONS[name] for name in ("nothing", "enter", "repair", "resend", "inflate", "partial", "end"))
TOP = 1 << 32


def newreno():
    return Recovery()


def sack():
    r = Recovery()
    r.sack = True
    return r


def test_newreno_enters_on_the_third_duplicate_ack_only():
    r = newreno()
    assert [r.on_dupack(1000, 0, 0) for _ in range(4)] == [NOTHING, NOTHING, ENTER, NOTHING]


def test_newreno_inflates_in_recovery_deflates_on_a_partial_ack_and_ends_at_recover():
    r = newreno()
    r.start(snd_max=10_000, flight=9000)
    assert r.active and r.recover == 10_000 and r.fast_retransmits == 1
    assert r.on_dupack(1000, 0, 0) == INFLATE
    assert r.on_new_ack(4000, 0) == PARTIAL and r.active  # RFC 6582 3.2 step 5
    assert r.on_new_ack(10_000, 0) == END and not r.active  # step 3
    assert r.dupacks == 0


def test_one_window_of_losses_reduces_once():
    """RFC 6582 section 3.2 step 2: no new episode until snd_una passes
    the last one's recovery point."""
    r = newreno()
    r.start(snd_max=10_000, flight=9000)
    assert r.on_new_ack(10_000, 0) == END
    assert not r.may_enter(10_000)
    assert [r.on_dupack(10_000, 0, 0) for _ in range(3)] == [NOTHING, NOTHING, NOTHING]
    assert r.on_new_ack(11_000, 0) == NOTHING and r.recover == -1  # passed
    assert r.may_enter(11_000)


def test_the_recovery_point_is_compared_modulo_2_32():
    r = newreno()
    r.start(snd_max=500, flight=2000)  # recover just after the wrap
    assert r.on_new_ack(TOP - 100, 0) == PARTIAL
    assert r.on_new_ack(500, 0) == END


def test_with_sack_rack_decides_and_dupthresh_stays_for_blockless_peers():
    r = sack()
    assert r.on_dupack(1000, 1000, 1) == ENTER  # RACK marked a loss
    r = sack()
    assert [r.on_dupack(1000, 0, 1) for _ in range(4)] == [NOTHING] * 4  # SACKs, nothing lost yet
    r = sack()
    assert [r.on_dupack(1000, 0, 0) for _ in range(3)] == [NOTHING, NOTHING, ENTER]  # no blocks


def test_sack_recovery_repairs_on_every_ack_until_recover():
    r = sack()
    r.start(snd_max=20_000, flight=19_000)
    assert r.recover_fs == 19_000 and (r.prr_delivered, r.prr_out) == (0, 0)
    assert r.on_dupack(1000, 0, 3) == REPAIR
    assert r.on_new_ack(5000, 0) == REPAIR
    r.set_pipe(flight=15_000, pipe=9000)
    assert r.window_credit(4000) == 6000  # in recovery: this ACK's pipe credit
    assert r.on_new_ack(20_000, 0) == END and r.window_credit(0) == 0
    # outside recovery cwnd still bounds the pipe: what the peer SACKed is credit
    assert r.window_credit(3000) == 3000


def test_losses_before_the_last_recovery_point_are_resent_without_a_new_reduction():
    r = sack()
    r.on_rto(snd_max=30_000)
    assert not r.active and r.recover == 30_000
    assert r.on_loss(2000) == RESEND
    assert r.on_new_ack(3000, 1000) == RESEND
    assert r.on_new_ack(30_000, 1000) == ENTER  # the recovery point passed


def test_prr_is_proportional_above_ssthresh():
    """RFC 6937 section 3: sndcnt = ceil(prr_delivered * ssthresh /
    RecoverFS) - prr_out while pipe > ssthresh."""
    r = sack()
    r.start(snd_max=20_000, flight=20_000)
    allowed = []
    for _ in range(10):
        r.delivered = 1000
        sndcnt = r.prr(pipe=18_000, mss=1000, ssthresh=10_000)
        allowed.append(sndcnt)
        r.on_sent(max(sndcnt, 0))
    assert r.prr_delivered == 10_000 and r.delivered == 0
    assert r.prr_out == sum(max(a, 0) for a in allowed)
    assert allowed[0] == 1000  # the fast retransmit always goes
    assert r.prr_out == math.ceil(10_000 * 10_000 / 20_000)  # half the delivered data


def test_prr_slow_start_reduction_bound_below_ssthresh():
    r = sack()
    r.start(snd_max=20_000, flight=20_000)
    r.on_sent(1000)
    r.delivered = 3000
    # pipe 4000 below ssthresh 10000: limit = max(3000 - 1000, 3000) + mss
    assert r.prr(pipe=4000, mss=1000, ssthresh=10_000) == 4000
    r.delivered = 1000
    assert r.prr(pipe=9500, mss=1000, ssthresh=10_000) == 500  # ssthresh - pipe


def test_prr_out_counts_only_in_recovery():
    r = sack()
    r.on_sent(1000)
    assert r.prr_out == 0
    r.start(snd_max=5000, flight=4000)
    r.on_sent(1000)
    assert r.prr_out == 1000


@pytest.mark.parametrize("make", [newreno, sack])
def test_an_rto_ends_the_episode(make):
    r = make()
    r.start(snd_max=10_000, flight=9000)
    r.on_dupack(1000, 0, 0)
    r.on_rto(snd_max=12_000)
    assert not r.active and r.dupacks == 0 and r.recover == 12_000 and r.window_credit(0) == 0
