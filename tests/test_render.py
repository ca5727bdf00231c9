"""The renderer with the real FluidSynth and real SoundFonts: no mocks."""

from __future__ import annotations

import io
import logging
import threading

import numpy as np
import pretty_midi
import pytest
import soundfile

from aria_engine.render import errors, mastering, soundfonts, synthesis
from aria_engine.render import find_soundfont, Renderer, RenderError, SoundFontError
from aria_engine.render.encoding import encode
from aria_engine.render.mastering import normalise, trim_silence
from aria_engine.render.soundfonts import FLUIDR3_PATH, SOUNDFONT_ENV, TIMGM_PATH
from aria_engine.render.synthesis import assign_channels, synthesize

SR = 44100


def default_font():
    return FLUIDR3_PATH if FLUIDR3_PATH.exists() else TIMGM_PATH


@pytest.fixture(scope="module")
def renderer():
    with Renderer(default_font()) as r:
        yield r


def note(pitch, start, end, velocity=100):
    return pretty_midi.Note(velocity=velocity, pitch=pitch, start=start, end=end)


def band(bars: int = 2, bpm: float = 120.0) -> pretty_midi.PrettyMIDI:
    """A few bars of piano, bass, drums and strings."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    beat = 60.0 / bpm
    piano = pretty_midi.Instrument(0, name="piano")
    bass = pretty_midi.Instrument(33, name="bass")
    drums = pretty_midi.Instrument(0, is_drum=True, name="drums")
    strings = pretty_midi.Instrument(48, name="strings")
    for bar, chord in zip(range(bars), [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)] * bars):
        t0 = bar * 4 * beat
        strings.notes += [note(p, t0, t0 + 4 * beat, 70) for p in chord]
        for b in range(4):
            t = t0 + b * beat
            piano.notes += [note(p, t, t + 0.9 * beat, 80) for p in chord]
            bass.notes.append(note(chord[0] - 24, t, t + 0.8 * beat))
            drums.notes.append(note(36 if b % 2 == 0 else 38, t, t + 0.1, 110))
            drums.notes.append(note(42, t + beat / 2, t + beat / 2 + 0.1, 80))
    midi.instruments = [piano, bass, drums, strings]
    return midi


def one_instrument(notes, program=0, is_drum=False) -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program, is_drum=is_drum)
    instrument.notes = list(notes)
    midi.instruments = [instrument]
    return midi


def decode(data: bytes):
    return soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)


def rms_dbfs(audio) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


# --- SoundFont resolution -------------------------------------------------------------------


def test_configured_path_wins_over_environment_and_defaults(monkeypatch):
    monkeypatch.setenv(SOUNDFONT_ENV, "/nonexistent/from-env.sf2")
    assert find_soundfont(TIMGM_PATH) == TIMGM_PATH


def test_environment_variable_is_used_when_nothing_is_configured(monkeypatch):
    monkeypatch.setenv(SOUNDFONT_ENV, str(TIMGM_PATH))
    assert find_soundfont() == TIMGM_PATH


def test_missing_configured_path_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    missing = tmp_path / "nope.sf2"
    with pytest.raises(SoundFontError, match="does not exist") as caught:
        find_soundfont(missing)
    assert str(missing) in str(caught.value)

    monkeypatch.setenv(SOUNDFONT_ENV, str(missing))
    with pytest.raises(SoundFontError) as caught:
        find_soundfont()
    assert str(missing) in str(caught.value) and SOUNDFONT_ENV in str(caught.value)


def test_file_that_is_not_a_soundfont_is_refused(tmp_path):
    wav = tmp_path / "song.sf2"
    soundfile.write(wav, np.zeros((100, 2), np.float32), SR, format="WAV")  # RIFF, but WAVE
    text = tmp_path / "notes.sf2"
    text.write_text("not a soundfont")
    for path in (wav, text):
        with pytest.raises(SoundFontError, match="not a SoundFont 2 file") as caught:
            find_soundfont(path)
        assert str(path) in str(caught.value)


def test_unreadable_paths_are_refused(tmp_path):
    with pytest.raises(SoundFontError, match="is a directory"):
        find_soundfont(tmp_path)
    beneath_a_file = tmp_path / "notes.txt"
    beneath_a_file.write_text("x")
    with pytest.raises(SoundFontError, match="cannot be read") as caught:
        find_soundfont(beneath_a_file / "font.sf2")
    assert str(beneath_a_file / "font.sf2") in str(caught.value)


def test_damaged_soundfont_with_a_valid_header_fails_to_load(tmp_path, caplog):
    damaged = tmp_path / "damaged.sf2"
    damaged.write_bytes(b"RIFF" + (1000).to_bytes(4, "little") + b"sfbk" + b"\0" * 40)
    with caplog.at_level(logging.DEBUG, logger="aria_engine.render"):
        with pytest.raises(SoundFontError, match="could not load") as caught:
            Renderer(damaged)
    assert str(damaged) in str(caught.value)
    # FluidSynth's own complaint goes to our log, not straight to stderr.
    assert any(r.message.startswith("fluidsynth:") and r.levelno == logging.ERROR for r in caplog.records)


def test_default_is_fluidr3_when_installed(monkeypatch):
    monkeypatch.delenv(SOUNDFONT_ENV, raising=False)
    expected = FLUIDR3_PATH if FLUIDR3_PATH.exists() else TIMGM_PATH
    assert find_soundfont() == expected


def test_timgm_inside_pretty_midi_is_the_fallback(tmp_path, monkeypatch):
    assert TIMGM_PATH.is_file()
    monkeypatch.delenv(SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(soundfonts, "FLUIDR3_PATH", tmp_path / "absent.sf2")
    assert find_soundfont() == TIMGM_PATH


def test_no_soundfont_anywhere_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv(SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(soundfonts, "FLUIDR3_PATH", tmp_path / "a.sf2")
    monkeypatch.setattr(soundfonts, "TIMGM_PATH", tmp_path / "b.sf2")
    with pytest.raises(SoundFontError) as caught:
        find_soundfont()
    message = str(caught.value)
    assert str(tmp_path / "a.sf2") in message and str(tmp_path / "b.sf2") in message
    assert "fluid-soundfont-gm" in message and SOUNDFONT_ENV in message


# --- Rendering ------------------------------------------------------------------------------


def test_band_renders_to_a_stereo_ogg_at_the_right_length_and_level(renderer):
    midi = band()
    clip = renderer.render(midi)
    assert (clip.format, clip.mime_type, clip.channels, clip.sample_rate) == ("ogg", "audio/ogg", 2, SR)
    assert clip.data[:4] == b"OggS"
    assert clip.soundfont == str(default_font())
    assert clip.notes == []

    audio, rate = decode(clip.data)
    assert rate == SR and audio.shape[1] == 2
    end = midi.get_end_time()
    assert end <= len(audio) / SR <= end + 3.0  # the release and reverb, trimmed
    assert abs(len(audio) / SR - clip.duration_s) < 0.05
    assert rms_dbfs(audio) > -30  # clearly audible, not silence
    assert not np.allclose(audio[:, 0], audio[:, 1], atol=1e-3)  # really stereo
    # Mastering keeps the piece's own level (mf here) under the ceiling: no longer at -1 dBFS.
    assert -12.0 < clip.peak_dbfs <= mastering.PEAK_CEILING_DBFS + 1e-6
    peak = np.abs(audio).max()
    assert peak < 1.0  # no sample at or above full scale, even after lossy coding
    assert 20 * np.log10(peak) == pytest.approx(clip.peak_dbfs, abs=1.5)


def with_velocity(midi: pretty_midi.PrettyMIDI, velocity: int) -> pretty_midi.PrettyMIDI:
    for instrument in midi.instruments:
        for n in instrument.notes:
            n.velocity = velocity
    return midi


def test_mastering_keeps_soft_pieces_softer_than_loud_ones(renderer):
    """The loudness cue survives: the same band at pp, mf and ff masters to three clearly
    different levels, in order, and the loudest never passes the ceiling."""
    levels = [mastering.level_db(renderer.master(with_velocity(band(), v)).audio, SR) for v in (35, 75, 120)]
    assert levels[0] + 3 < levels[1] and levels[1] + 3 < levels[2]
    loud = renderer.master(with_velocity(band(), 127)).audio
    assert mastering.peak_level_dbfs(loud) <= mastering.PEAK_CEILING_DBFS + 1e-6


def test_mastering_gain_keeps_the_order_and_most_of_the_gaps():
    gain = mastering.mastering_gain_db
    assert mastering.MASTER_REFERENCE_DB + gain(mastering.MASTER_REFERENCE_DB) == pytest.approx(mastering.MASTER_TARGET_DB)
    soft, loud = -40.0, -20.0
    gap = (loud + gain(loud)) - (soft + gain(soft))
    assert gap == pytest.approx(mastering.LOUDNESS_KEEP * (loud - soft))


def test_limiter_holds_peaks_under_the_ceiling_and_leaves_quiet_music_alone():
    quiet = tone(1.0, amplitude=0.5)
    assert np.array_equal(mastering.limit_peaks(quiet.copy(), SR), quiet)
    burst = tone(2.0, amplitude=0.3)
    burst[SR // 2 : SR // 2 + 2000] *= 8.0  # a 45 ms transient far over full scale
    limited = mastering.limit_peaks(burst.copy(), SR)
    assert mastering.peak_level_dbfs(limited) <= mastering.PEAK_CEILING_DBFS + 1e-6
    assert np.allclose(limited[: SR // 4], burst[: SR // 4], atol=1e-6)  # long before: untouched
    assert np.abs(limited[-SR // 4 :]).max() == pytest.approx(0.3, rel=0.01)  # recovered after


def test_every_part_sounds_and_drums_play_the_drum_kit(renderer):
    for instrument in band().instruments:
        midi = pretty_midi.PrettyMIDI()
        midi.instruments = [instrument]
        assert rms_dbfs(renderer.synthesize(midi)) > -60, instrument.name

    hits = [note(p, 0.25 * i, 0.25 * i + 0.1) for i, p in enumerate([36, 38, 42, 42] * 2)]
    drums = renderer.synthesize(one_instrument(hits, is_drum=True))
    piano = renderer.synthesize(one_instrument(hits, program=0))

    def treble_share(audio):  # energy above 5 kHz: cymbals have lots, low piano notes little
        spectrum = np.abs(np.fft.rfft(audio[:, 0])) ** 2
        return spectrum[int(5000 * len(audio) / SR) :].sum() / spectrum.sum()

    assert treble_share(drums) > 5 * treble_share(piano)


def test_more_than_sixteen_instruments_all_sound(renderer):
    slot = 0.4
    midi = pretty_midi.PrettyMIDI()
    for i in range(20):
        instrument = pretty_midi.Instrument(program=(i * 5) % 100)
        instrument.notes.append(note(60, i * slot, i * slot + 0.2))
        midi.instruments.append(instrument)
    audio = renderer.synthesize(midi)
    for i in range(20):
        start = round((i * slot + 0.02) * SR)
        segment = audio[start : start + round(0.15 * SR)]
        assert rms_dbfs(segment) > -50, f"instrument {i} is silent"


def test_channel_assignment():
    melodic = [pretty_midi.Instrument(p) for p in range(20)]
    kits = [pretty_midi.Instrument(0, is_drum=True) for _ in range(2)]
    channels = assign_channels(melodic + kits)
    assert len(set(channels)) == 22
    assert channels[-2:] == [9, 25]
    assert all(c % 16 != 9 for c in channels[:20])

    crowd = [pretty_midi.Instrument(p % 3) for p in range(300)]  # more than 240 melodic channels
    channels = assign_channels(crowd)
    assert len(set(channels)) == 3  # shared by program
    assert all(channels[i] == channels[i % 3] for i in range(300))


def test_pitch_bends_and_controllers_are_played(renderer):
    def pitch(audio):
        spectrum = np.abs(np.fft.rfft(audio[:, 0] * np.hanning(len(audio)), 1 << 17))
        return np.argmax(spectrum) * SR / (1 << 17)

    flute = one_instrument([note(69, 0.0, 2.0)], program=73)
    flute.instruments[0].pitch_bends.append(pretty_midi.PitchBend(8191, 1.0))  # +2 semitones
    audio = renderer.synthesize(flute)
    assert pitch(audio[round(0.3 * SR) : round(0.9 * SR)]) == pytest.approx(440.0, rel=0.01)
    assert pitch(audio[round(1.3 * SR) : round(1.9 * SR)]) == pytest.approx(493.9, rel=0.01)

    organ = one_instrument([note(60, 0.0, 2.0)], program=19)
    organ.instruments[0].control_changes.append(pretty_midi.ControlChange(7, 20, 1.0))  # volume down
    audio = renderer.synthesize(organ)
    loud, soft = audio[round(0.5 * SR) : SR], audio[round(1.5 * SR) : 2 * SR]
    assert rms_dbfs(loud) - rms_dbfs(soft) > 10


def test_a_repeated_key_sounds_again_and_zero_length_notes_end(renderer):
    organ = one_instrument([note(60, 0.0, 1.0), note(60, 1.0, 2.0), note(64, 2.5, 2.5)], program=19)
    audio = renderer.synthesize(organ)
    first, second = audio[round(0.5 * SR) : round(0.9 * SR)], audio[round(1.5 * SR) : round(1.9 * SR)]
    assert abs(rms_dbfs(first) - rms_dbfs(second)) < 3  # the second note was not released at once
    blip = audio[round(2.5 * SR) : round(2.6 * SR)]
    assert rms_dbfs(blip) > -60  # the zero-length note sounds briefly...
    assert len(audio) / SR < 2.5 + synthesis.MAX_TAIL_S  # ...and ends: voices die before the tail limit
    assert rms_dbfs(audio[-SR // 10 :]) < -80


def test_silent_tail_is_trimmed(renderer):
    midi = one_instrument([note(60, 0.0, 0.5), note(64, 0.5, 1.0)])
    midi.instruments[0].control_changes.append(pretty_midi.ControlChange(64, 0, 8.0))  # a late event
    assert midi.get_end_time() == pytest.approx(8.0)
    raw = renderer.synthesize(midi)
    assert len(raw) / SR >= 8.0  # synthesis runs to the last event...
    clip = renderer.render(midi)
    assert 1.0 < clip.duration_s < 3.5  # ...the clip ends after the last note's release
    audio, _ = decode(clip.data)
    assert abs(len(audio) / SR - clip.duration_s) < 0.05


def test_same_midi_gives_the_same_audio(renderer):
    midi, other = band(), band(bars=1, bpm=90)
    first = renderer.synthesize(midi)
    renderer.synthesize(other)  # a render in between must not leak into the next
    again = renderer.synthesize(midi)
    assert np.array_equal(first, again)
    assert np.array_equal(first, synthesize(midi, soundfont=renderer.soundfont))  # freshly loaded font


def test_concurrent_renders_match_sequential_ones(renderer):
    pieces = [band(bars=1), band(bars=1, bpm=100), one_instrument([note(60, 0, 1)], program=48)]
    expected = [renderer.synthesize(m) for m in pieces]
    results: dict[int, np.ndarray] = {}

    def work(i):
        results[i] = renderer.synthesize(pieces[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pieces))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(results[i], expected[i]) for i in range(len(pieces)))


def test_a_piece_without_notes_is_a_clear_error(renderer):
    empty = pretty_midi.PrettyMIDI()
    no_notes = pretty_midi.PrettyMIDI()
    no_notes.instruments.append(pretty_midi.Instrument(0))
    for midi in (empty, no_notes):
        with pytest.raises(RenderError, match="no notes"):
            renderer.render(midi)
    with pytest.raises(RenderError, match="no notes"):
        synthesize(empty, soundfont=renderer.soundfont)


def test_a_piece_longer_than_the_limit_is_refused():
    with Renderer(TIMGM_PATH, max_duration_s=5) as short:
        with pytest.raises(RenderError, match="at most 5.0 s"):
            short.render(one_instrument([note(60, 0, 7)]))


def test_mp3_works_or_says_clearly_why_not(renderer):
    midi = band(bars=1)
    if "MPEG_LAYER_III" not in soundfile.available_subtypes("MP3"):
        with pytest.raises(RenderError, match="MP3 audio is not available"):
            renderer.render(midi, "mp3")
        return
    clip = renderer.render(midi, "mp3")
    assert (clip.format, clip.mime_type) == ("mp3", "audio/mpeg")
    audio, rate = decode(clip.data)
    assert rate == SR and audio.shape[1] == 2
    assert abs(len(audio) / SR - clip.duration_s) < 0.1  # MP3 pads a few ms
    assert rms_dbfs(audio) > -30


def test_unknown_format_is_refused(renderer):
    with pytest.raises(RenderError, match="choose one of ogg, mp3"):
        renderer.render(band(bars=1), "flac")


def test_max_bytes_lowers_quality_then_shortens(renderer):
    midi = band(bars=4)
    full = renderer.render(midi)

    smaller = renderer.render(midi, max_bytes=int(len(full.data) * 0.8))
    assert len(smaller.data) <= len(full.data) * 0.8
    assert smaller.duration_s == pytest.approx(full.duration_s)
    limit_words = f"{len(full.data) * 0.8 / 1000:.3g} kB"
    assert smaller.notes == [f"audio encoded at lower quality to fit the {limit_words} upload limit"]

    limit = int(len(full.data) * 0.2)
    shorter = renderer.render(midi, max_bytes=limit)
    assert len(shorter.data) <= limit
    assert shorter.duration_s < full.duration_s * 0.6
    assert len(shorter.notes) == 1
    assert "shortened to" in shorter.notes[0] and "upload limit" in shorter.notes[0]
    audio, _ = decode(shorter.data)
    assert abs(len(audio) / SR - shorter.duration_s) < 0.05
    assert np.abs(audio[-SR // 10 :]).max() < 0.05  # faded out, not cut off

    for hopeless in (2000, 0):
        with pytest.raises(RenderError, match="upload limit"):
            renderer.render(midi, max_bytes=hopeless)


def test_timgm_font_renders_too():
    with Renderer(TIMGM_PATH) as small:
        clip = small.render(band(bars=1))
    assert clip.soundfont.endswith("TimGM6mb.sf2")
    audio, _ = decode(clip.data)
    assert rms_dbfs(audio) > -30


def test_closed_renderer_says_so():
    r = Renderer(TIMGM_PATH)
    r.close()
    with pytest.raises(RenderError, match="closed"):
        r.render(band(bars=1))


# --- Loudness, trimming and encoding on plain arrays ----------------------------------------


def tone(seconds, amplitude=0.1, frequency=440.0):
    t = np.arange(round(seconds * SR)) / SR
    wave = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.stack([wave, 0.5 * wave], axis=1).astype(np.float32)


def test_normalise_sets_the_peak_and_keeps_the_shape():
    audio = tone(0.5, amplitude=0.05)
    out = normalise(audio)
    assert 20 * np.log10(np.abs(out).max()) == pytest.approx(-1.0, abs=0.001)
    assert np.allclose(out / out.max(), audio / audio.max(), atol=1e-6)
    loud = normalise(tone(0.5, amplitude=3.0), peak_dbfs=-3.0)  # over full scale comes down
    assert 20 * np.log10(np.abs(loud).max()) == pytest.approx(-3.0, abs=0.001)
    assert not normalise(np.zeros((100, 2), np.float32)).any()
    with pytest.raises(ValueError):
        normalise(audio, peak_dbfs=1.0)


def test_trim_silence_keeps_a_short_faded_tail():
    audio = np.concatenate([tone(1.0), np.zeros((2 * SR, 2), np.float32)])
    trimmed = trim_silence(audio, SR, keep_tail_s=0.25)
    assert len(trimmed) / SR == pytest.approx(1.25, abs=0.01)
    assert np.array_equal(trimmed[: SR // 2], audio[: SR // 2])  # the music is untouched
    assert np.abs(trimmed[-1]).max() == 0.0

    quiet_tail = np.concatenate([tone(1.0), tone(2.0, amplitude=1e-5)])  # -80 dB: silence
    assert len(trim_silence(quiet_tail, SR, keep_tail_s=0.0)) / SR == pytest.approx(1.0, abs=0.01)
    assert len(trim_silence(quiet_tail, SR, threshold_db=-90.0)) == len(quiet_tail)
    assert len(trim_silence(np.zeros((SR, 2), np.float32), SR)) == 0


def test_encode_qualities_and_formats():
    audio = normalise(tone(2.0) + np.random.default_rng(0).normal(0, 0.01, (2 * SR, 2)).astype(np.float32))
    best, small = encode(audio, SR, quality=0.9), encode(audio, SR, quality=0.0)
    assert len(small) < len(best)
    decoded, rate = decode(small)
    assert rate == SR and decoded.shape == audio.shape
    with pytest.raises(ValueError):
        encode(audio, SR, quality=1.5)
    with pytest.raises(RenderError, match="Unknown audio format"):
        encode(audio, SR, "wma")


def test_progress_runs_through_synthesis_and_encoding_and_changes_nothing(renderer):
    midi = band(bars=8)  # 16 s: progress every half second of audio
    heard = {"synthesis": [], "encoding": []}
    mastered = renderer.master(midi, progress=heard["synthesis"].append)
    rendered = renderer.encode(mastered, progress=heard["encoding"].append)
    for stage, fractions in heard.items():
        assert len(fractions) >= 10, stage
        assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] <= 1.0, stage
    assert heard["synthesis"][-1] > 0.9 and heard["encoding"][-1] == 1.0
    assert np.array_equal(mastered.audio, renderer.master(midi).audio)  # listening changes no sample
    assert np.array_equal(decode(rendered.data)[0], decode(renderer.render(midi).data)[0])


def test_a_render_abandoned_through_progress_stops_every_synth(renderer):
    class Abandon(Exception):
        pass

    heard = []

    def give_up(fraction):
        heard.append(fraction)
        if fraction >= 0.2:
            raise Abandon()

    with pytest.raises(Abandon):
        renderer.master(band(bars=8), progress=give_up)
    assert heard[-1] >= 0.2 and all(f < 0.2 for f in heard[:-1])  # not called again after it raised
    assert renderer.master(band(bars=2)).audio.size  # the renderer (and its font) still work


def test_a_synth_told_to_stop_stops_at_its_next_look(renderer):
    """The other synths of an abandoned render: `stop` set, and they write nothing more."""
    midi = band(bars=8)
    instruments = midi.instruments
    channels = assign_channels(instruments)
    events = synthesis.midi_events(instruments, channels, SR)
    end = round(midi.get_end_time() * SR)
    audio = np.zeros((end + SR, 2), np.float32)
    synth = synthesis._Synth(renderer._font, SR)
    try:
        synth.select_programs(instruments, channels)
        stop = threading.Event()
        stop.set()
        with pytest.raises(errors._Stopped):
            synth.play(events, audio, end, synthesis.FULL_TAIL, stop)
    finally:
        synth.close()
    written = np.flatnonzero(np.abs(audio).max(axis=1))
    assert written.size and written[-1] < synthesis.PROGRESS_EVERY_S * SR + SR // 10  # only up to its first look
