"""EGMA model (arXiv 2403.12416) and its eCLIP option (arXiv 2403.10153); no Qt, never imports training/.

config (ModelConfig, LossConfig, presets) - encoders (timm image, BERT text) - egma (EGMAModel) -
losses (vectorized Eq. 1-8) and losses_loop (their slow references) - distributed (feature gathering) -
eclip (heatmap processor, mixup, curriculum) - attention (sentence maps) - metrics (CC, NSS, KLD, SIM,
AUC-Judd, pointing game) - zeroshot (prompts, class scores, retrieval P@k) - checkpoint (safetensors) -
image_transforms (letterbox shared by images and heatmaps) - testing (tiny local BERT) - bench.
"""
