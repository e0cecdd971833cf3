"""Tiny random text encoders built locally, for tests, demos and benchmarks (nothing from a hub).

:func:`make_tiny_bert_dir` writes a directory that ``transformers`` loads like a hub model
(``config.json``, ``model.safetensors``, ``vocab.txt`` + tokenizer files), so it can stand in for
``emilyalsentzer/Bio_ClinicalBERT`` as ``ModelConfig.text_encoder`` with ``local_files_only=True``.
The vocabulary holds BERT's special tokens, common radiology words (and those of the synthetic reports),
and every single letter/digit plus its ``##`` continuation, so WordPiece never needs ``[UNK]``.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

# BERT's special tokens, in the order of the original uncased vocab (ids 0, 100-103 there; here 0-4).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Common words of chest X-ray reports (findings, anatomy, qualifiers, dictation punctuation words), plus
# the CheXpert 5x200 / 8x200 prompt vocabulary (EGMA appendix Tables V-VI).
RADIOLOGY_WORDS = """
a an the is are was were be been there no not without with and or of in on at to from for by as than
this that these those it its which may likely possibly probably suggest suggests suggesting represents
represent consistent compatible seen present identified noted visible unchanged stable new interval
since prior compared comparison previous study again redemonstrated persistent resolved resolving
improved improving increased increasing decreased decreasing worsened worsening minimal mild mildly
moderate moderately severe severely small large tiny trace slight slightly marked significant
lung lungs lobe lobes upper middle lower mid zone zones base bases basilar bibasilar apex apical
apices right left bilateral bilaterally unilateral hilar hila hilum perihilar central peripheral
lateral medial anterior posterior ap pa frontal view portable upright supine erect semi
heart cardiac cardiomediastinal silhouette size contour contours mediastinum mediastinal aorta aortic
knob arch tortuous calcified calcification calcifications trachea tracheal midline carina bronchi
bronchial bronchus airway airways vascular vasculature vessels vascularity pulmonary pleural pleura
space spaces costophrenic angle angles diaphragm hemidiaphragm hemidiaphragms dome domes
effusion effusions pneumothorax pneumothoraces consolidation consolidations opacity opacities
opacification atelectasis atelectatic atelectases edema congestion interstitial alveolar airspace
infiltrate infiltrates pneumonia infection aspiration nodule nodules mass masses lesion lesions
cardiomegaly enlarged enlargement enlarges normal abnormal abnormality abnormalities clear
acute chronic cardiopulmonary process disease findings finding impression fracture fractures
rib ribs clavicle spine thoracic vertebral osseous bony bones soft tissue tissues chest wall
tube tubes line lines catheter pacemaker device devices wires sternotomy clips tip terminates
endotracheal nasogastric picc port jugular subclavian vein atrium ventricle ventricular
linear patchy hazy diffuse focal streaky platelike plate like subsegmental segmental retrocardiac
bandlike reticular partial subpulmonic layering blunting blunted fluid air loss volume shift
geometric fluffy ill defined borders border bronchograms cortical step off angulated oblique
radiolucent radiopaque communuted comminuted displaced shadow cardiogenic lucency lucent
upper limits limit borderline prominent prominence hyperinflated hyperinflation emphysema
scarring scar granuloma granulomas degenerative changes change otherwise overall grossly
period comma colon new paragraph next full stop
""".split()


def tiny_vocab(extra_words: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The token list of the tiny BERT: specials, words, then characters and ``##`` characters (no dups)."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = list(SPECIAL_TOKENS) + RADIOLOGY_WORDS + [w.lower() for w in extra_words]
    tokens += chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    seen: set[str] = set()
    return [t for t in tokens if not (t in seen or seen.add(t))]


def tiny_bert_config_kwargs(vocab_size: int, **overrides: Any) -> dict[str, Any]:
    """BertConfig fields of the tiny random encoder (2 layers, width 32), with overrides."""
    kw: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
        "pad_token_id": 0,
    }
    kw.update(overrides)
    kw["vocab_size"] = vocab_size
    return kw


def build_tiny_tokenizer(extra_words: list[str] | tuple[str, ...] = ()):
    """A ``BertTokenizerFast`` over :func:`tiny_vocab` (lower-cased), built in memory."""
    from transformers import BertTokenizerFast

    vocab = {tok: i for i, tok in enumerate(tiny_vocab(extra_words))}
    # transformers 5: BertTokenizerFast takes the vocab mapping directly (vocab_file is gone).
    return BertTokenizerFast(vocab=vocab, do_lower_case=True)


def build_random_bert(extra_words: list[str] | tuple[str, ...] = (), seed: int = 0, **config_overrides: Any):
    """(BertModel with random weights, tokenizer); deterministic for a given seed."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = build_tiny_tokenizer(extra_words)
    config = BertConfig(**tiny_bert_config_kwargs(len(tokenizer.get_vocab()), **config_overrides))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    return model, tokenizer


def make_tiny_bert_dir(
    path: str | Path, extra_words: list[str] | tuple[str, ...] = (), seed: int = 0
) -> Path:
    """Write a tiny random BERT + its tokenizer to ``path`` and return it.

    Usable as ``ModelConfig(text_encoder=str(path), local_files_only=True)``; ``extra_words`` (e.g. the
    words of synthetic reports) join the vocabulary as whole tokens.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model, tokenizer = build_random_bert(extra_words, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
