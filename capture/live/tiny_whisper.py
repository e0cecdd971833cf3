"""A tiny, randomly initialised Whisper model in faster-whisper's (CTranslate2) format, built locally.

No weights can be downloaded, yet the dictation pipeline (faster-whisper decoding, word timestamps, VAD, the
streaming worker) must run for real in tests and in the demo's offline mode. :func:`build_tiny_whisper` builds
a model with Whisper's exact architecture and token layout but tiny dimensions and random weights:

1. a byte-level BPE tokenizer (``tokenizers``) trained on a few hundred radiology words, followed by Whisper's
   special tokens in Whisper's order, ending with ``<|notimestamps|>`` so that the first timestamp token
   ``<|0.00|>`` is the next id (faster-whisper computes ``timestamp_begin = no_timestamps + 1``);
2. ``transformers.WhisperForConditionalGeneration`` from a tiny ``WhisperConfig`` (80 mel bins and
   ``max_source_positions=1500``, i.e. 30 s of audio, as every Whisper model; total vocabulary = text +
   specials + 1501 timestamp tokens <|0.00|>..<|30.00|>), random init, saved with ``save_pretrained``;
3. converted with ``ctranslate2.converters.TransformersConverter`` (which appends the timestamp tokens to the
   vocabulary), with ``tokenizer.json`` and ``preprocessor_config.json`` (``WhisperFeatureExtractor``)
   copied in, so that ``faster_whisper.WhisperModel(directory)`` never needs the hub.

Random weights produce arbitrary text: what this model is good for is exercising the pipeline, not the words.
The result is cached: a second call with the same parameters returns the existing directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from radgaze.capture.base.errors import CheckpointError

# Bump when the recipe changes, so stale caches are rebuilt.
RECIPE_VERSION = 1

# Whisper's special tokens, in the order of the English-only vocabularies (tiny.en ... medium.en):
# <|endoftext|> then <|startoftranscript|>, the language tokens (only <|en|> kept here), task tokens,
# <|startoflm|>, <|startofprev|>, <|nocaptions|>, <|notimestamps|>; the timestamp tokens follow
# (openai/whisper whisper/tokenizer.py, get_encoding(): specials list).
WHISPER_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)
N_TIMESTAMP_TOKENS = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps (Whisper: 30 s window, 20 ms resolution)
N_MEL_BINS = 80  # log-Mel channels of every Whisper model before large-v3 (Radford et al. 2022, sec. 2.2)
MAX_SOURCE_POSITIONS = (
    1500  # encoder frames in 30 s (3000 mel frames, stride-2 conv); faster-whisper needs it
)
MAX_TARGET_POSITIONS = 448  # Whisper's decoder context (openai/whisper ModelDimensions.n_text_ctx)
BPE_VOCAB_SIZE = 390  # 256 byte symbols + ~134 merges -> total vocab ~1.9k with specials and timestamps

# Words a chest-radiograph report is made of: the tokenizer's training corpus, also the default vocabulary
# prompt of radgaze.capture.live.asr. Illustrative list, from the findings vocabulary of REFLACX / MIMIC-CXR-style reports.
RADIOLOGY_WORDS = (
    "the lungs are clear there is no pleural effusion or pneumothorax heart size is normal mediastinal "
    "contours are within normal limits cardiomegaly consolidation atelectasis opacity opacities edema "
    "pulmonary vascular congestion nodule mass fracture rib ribs clavicle spine hilar hila lobe upper lower "
    "middle left right bilateral basilar apical costophrenic angle angles blunting hemidiaphragm diaphragm "
    "airspace disease interstitial markings increased decreased mild moderate severe small large trace "
    "stable unchanged compared prior study portable frontal lateral view views chest radiograph impression "
    "findings support devices endotracheal tube nasogastric catheter central venous line pacemaker leads "
    "sternotomy wires emphysema hyperinflation scarring granuloma calcified aorta tortuous enlarged "
    "cardiac silhouette widened mediastinum subcutaneous emphysema free air pneumonia infection aspiration "
    "period comma colon new paragraph full stop and with without of in at on to is are be may likely "
    "possible suggestive consistent represent cannot excluded recommend follow up clinical correlation "
    "a an no not this that which zone zones retrocardiac perihilar peribronchial thickening"
).split()


def build_tokenizer_json(path: Path, *, words: tuple[str, ...] = RADIOLOGY_WORDS) -> dict[str, int]:
    """Train a byte-level BPE on ``words``, append Whisper's specials, write ``tokenizer.json``.

    Returns the ids of the special tokens. Text token ids come first (0 .. n_text-1), then the specials in
    :data:`WHISPER_SPECIAL_TOKENS` order, ``<|notimestamps|>`` last.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # GPT-2 style byte-level pre-tokenization without an added prefix space, as Whisper's tokenizer
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    corpus = [" " + w for w in words] + [" " + " ".join(words)]
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_special_tokens(list(WHISPER_SPECIAL_TOKENS))
    ids = {t: tok.token_to_id(t) for t in WHISPER_SPECIAL_TOKENS}
    n = tok.get_vocab_size(with_added_tokens=True)
    assert ids["<|notimestamps|>"] == n - 1, "timestamp tokens must follow <|notimestamps|>"
    tok.save(str(path))
    return ids


def default_cache_dir() -> Path:
    """Where the demo's offline mode keeps its tiny Whisper: $XDG_CACHE_HOME/radgaze (~/.cache/radgaze)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "radgaze" / f"tiny-whisper-v{RECIPE_VERSION}"


def _recipe(seed: int, d_model: int, n_layers: int) -> dict:
    return {"recipe": RECIPE_VERSION, "seed": seed, "d_model": d_model, "n_layers": n_layers}


def build_tiny_whisper(
    out_dir: str | os.PathLike | None = None, *, seed: int = 2, d_model: int = 64, n_layers: int = 2
) -> Path:
    """Build (or reuse) a tiny random Whisper model for faster-whisper in ``out_dir``; return the directory.

    ``seed`` 2 is the default because, with torch's CPU generator, that model decodes the real JFK speech
    clip (../shared/data/audio) into several words (seeds 0 and 1 give one to three), as pipeline tests want.

    ``out_dir`` (default :func:`default_cache_dir`) afterwards holds ``model.bin``, ``config.json``,
    ``vocabulary.json``, ``tokenizer.json``,
    ``preprocessor_config.json`` and ``radgaze_tiny_whisper.json`` (the recipe, used as the cache key).
    Building takes a few seconds on one CPU core and needs torch, transformers, tokenizers and ctranslate2 (a
    test dependency); nothing is downloaded. Raises :class:`CheckpointError` if the conversion fails.
    """
    out = default_cache_dir() if out_dir is None else Path(out_dir)
    recipe = _recipe(seed, d_model, n_layers)
    if _is_cached(out, recipe):
        return out
    _check_build_dependencies()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny-whisper-", dir=out.parent) as tmp:
        hf_dir = Path(tmp) / "hf"
        hf_dir.mkdir()
        _save_transformers_model(hf_dir, seed=seed, d_model=d_model, n_layers=n_layers)
        staged = Path(tmp) / "ct2"
        _convert_to_ctranslate2(hf_dir, staged)
        (staged / "radgaze_tiny_whisper.json").write_text(json.dumps(recipe))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    return out


def _is_cached(out: Path, recipe: dict) -> bool:
    """A model built by the same recipe is already in ``out``."""
    marker = out / "radgaze_tiny_whisper.json"
    if not (marker.is_file() and (out / "model.bin").is_file()):
        return False
    try:
        return json.loads(marker.read_text()) == recipe
    except ValueError:
        return False


def _check_build_dependencies() -> None:
    try:
        import ctranslate2.converters  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise CheckpointError(
            f"building the tiny test Whisper needs torch, transformers and ctranslate2 ({e}); "
            "install the test extras: pip install -e '.[test]'"
        ) from e


def _save_transformers_model(hf_dir: Path, *, seed: int, d_model: int, n_layers: int) -> None:
    """Steps 1 and 2 of the module docstring: tokenizer, tiny WhisperConfig, random weights, generation
    config and feature extractor, saved in transformers' layout in ``hf_dir``."""
    import torch
    from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    ids = build_tokenizer_json(hf_dir / "tokenizer.json")
    (hf_dir / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1024})
    )
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    heads = max(1, d_model // 32)
    config = _whisper_config(ids, d_model=d_model, n_layers=n_layers, heads=heads)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    _favour_whole_words(model, hf_dir / "tokenizer.json", n_text=eot)
    # Whisper's begin-suppress list is [space, <|endoftext|>] (openai/whisper decoding.py SuppressBlank);
    # suppress list empty: faster-whisper adds its non-speech tokens itself (suppress_tokens=[-1]).
    space_id = _space_token_id(hf_dir / "tokenizer.json")
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        suppress_tokens=[],
        begin_suppress_tokens=[space_id, eot],
        alignment_heads=[[layer, h] for layer in range(n_layers // 2, n_layers) for h in range(heads)],
    )
    model.save_pretrained(hf_dir)
    WhisperFeatureExtractor(feature_size=N_MEL_BINS).save_pretrained(hf_dir)


def _whisper_config(ids: dict[str, int], *, d_model: int, n_layers: int, heads: int):
    """Whisper's architecture at tiny width: 80 mel bins, 30 s of audio, text + specials + timestamps."""
    from transformers import WhisperConfig

    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    return WhisperConfig(
        vocab_size=ids["<|notimestamps|>"] + 1 + N_TIMESTAMP_TOKENS,
        num_mel_bins=N_MEL_BINS,
        d_model=d_model,
        encoder_layers=n_layers,
        decoder_layers=n_layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_source_positions=MAX_SOURCE_POSITIONS,
        max_target_positions=MAX_TARGET_POSITIONS,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
    )


def _convert_to_ctranslate2(hf_dir: Path, staged: Path) -> None:
    """Step 3: CTranslate2's converter (float32), tokenizer.json and preprocessor_config.json copied in."""
    import ctranslate2.converters

    quiet = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # no progress bars from the converter's reload of the model
    try:
        converter = ctranslate2.converters.TransformersConverter(
            str(hf_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]
        )
        converter.convert(str(staged), quantization="float32", force=True)
    except Exception as e:
        raise CheckpointError(f"converting the tiny Whisper with CTranslate2 failed: {e}") from e
    finally:
        if quiet is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = quiet


def _favour_whole_words(model, tokenizer_json: Path, *, n_text: int, gain: float = 4.0) -> None:
    """Scale the (tied) output embeddings so that greedy decoding of random weights prefers whole words.

    Logits are hidden · E^T, so a larger embedding norm makes a token win the argmax more often. Whole-word
    tokens (a leading space, letters only) get ``gain``; bare bytes (ids < 256, mostly invalid UTF-8 alone)
    get 1/gain. The text stays arbitrary, but it is made of words separated by spaces, which exercises word
    timestamps and the streaming logic the way speech does.
    """
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    scale = torch.ones(model.config.vocab_size)
    for i in range(n_text):
        text = tok.decode([i])
        if i < 256:
            scale[i] = 1.0 / gain
        elif text.startswith(" ") and text[1:].isalpha() and len(text) > 2:
            scale[i] = gain
    with torch.no_grad():
        emb = model.get_decoder().embed_tokens.weight
        emb.mul_(scale[:, None].to(emb.dtype))


def _space_token_id(tokenizer_json: Path) -> int:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    ids = tok.encode(" ", add_special_tokens=False).ids
    return int(ids[0])
