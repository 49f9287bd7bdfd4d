"""Verdict sounds, the bell fallback, and the relay's no-op."""

from __future__ import annotations

import logging
import stat
import wave
from pathlib import Path

import pytest

from hardware.feedback import BELLS, SAMPLE_RATE, TONES, Feedback, Relay, Sounds
from protocol.reasons import Verdict


def test_each_verdict_has_its_own_wav(tmp_path: Path) -> None:
    sounds = Sounds(tmp_path, detect_player=False, bell=lambda n: None)
    pcm = {}
    for verdict in Verdict:
        with wave.open(str(sounds.files[verdict])) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (
                1,
                2,
                SAMPLE_RATE,
            )
            expected_ms = sum(ms for _, ms in TONES[verdict])
            assert abs(wav.getnframes() - SAMPLE_RATE * expected_ms / 1000) < 10
            pcm[verdict] = wav.readframes(wav.getnframes())
    assert len(set(pcm.values())) == len(Verdict)  # all distinct
    assert (
        max(
            abs(int.from_bytes(pcm[Verdict.DENY][i : i + 2], "little", signed=True))
            for i in range(0, 2000, 2)
        )
        > 3000
    )  # not silence


def test_bell_fallback_counts_differ(tmp_path: Path) -> None:
    rung: list[int] = []
    sounds = Sounds(tmp_path, detect_player=False, bell=rung.append)
    assert [sounds.play(v) for v in (Verdict.ADMIT, Verdict.ATTENTION, Verdict.DENY)] == [
        "bell"
    ] * 3
    assert rung == [BELLS[Verdict.ADMIT], BELLS[Verdict.ATTENTION], BELLS[Verdict.DENY]]
    assert len({BELLS[Verdict.ADMIT], BELLS[Verdict.ATTENTION], BELLS[Verdict.DENY]}) == 3


def test_player_gets_the_verdict_file(tmp_path: Path) -> None:
    # A real executable standing in for aplay: it records which file it was asked to play.
    played = tmp_path / "played.txt"
    player = tmp_path / "player.sh"
    player.write_text(f'#!/bin/sh\necho "$@" >> {played}\n')
    player.chmod(player.stat().st_mode | stat.S_IXUSR)
    sounds = Sounds(tmp_path / "sounds", player=[str(player)], bell=lambda n: pytest.fail())
    assert sounds.play(Verdict.DENY) == "player"
    assert sounds.wait() == 0
    assert played.read_text().strip() == str(sounds.files[Verdict.DENY])


def test_missing_player_falls_back_to_bell(tmp_path: Path) -> None:
    rung: list[int] = []
    sounds = Sounds(tmp_path, player=[str(tmp_path / "no-such-player")], bell=rung.append)
    assert sounds.play(Verdict.EXIT) == "bell"
    assert rung == [BELLS[Verdict.EXIT]]
    assert sounds.player is None


def test_relay_without_gpio_is_a_noop_that_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(pin=17)  # gpiozero is absent here, or there is no GPIO chip
    assert not relay.available
    rung: list[int] = []
    feedback = Feedback(Sounds(tmp_path, detect_player=False, bell=rung.append), relay)
    with caplog.at_level(logging.WARNING, logger="hardware.feedback"):
        feedback.verdict(Verdict.ADMIT)
        feedback.verdict(Verdict.ADMIT)
        feedback.verdict(Verdict.DENY)
    assert sum("relay disabled" in r.message for r in caplog.records) == 1
    assert rung == [1, 1, 3]


def test_relay_pulses_only_on_admit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    relay = Relay(pin=None)
    feedback = Feedback(Sounds(tmp_path, detect_player=False, bell=lambda n: None), relay)
    with caplog.at_level(logging.WARNING, logger="hardware.feedback"):
        for verdict in (Verdict.DENY, Verdict.ATTENTION, Verdict.EXIT):
            feedback.verdict(verdict)
        assert not caplog.records  # no pulse was even attempted
        feedback.attention_confirmed()
    assert [r.message for r in caplog.records] == ["relay disabled: no relay pin configured"]
