"""The zero-shot claim: CLIP, SpaceVLM and DRC on captions without negation (NegBench's
COCO_val_retrieval.csv / msr_vtt_retrieval.csv, or the synthetic set's plain captions)."""

from drc_jax.launch.config import base_config, paper_protocol, row


def get_config():
    config = paper_protocol(base_config())
    config.name = "zeroshot"
    config.description = "Zero-shot: CLIP vs SpaceVLM vs SpaceVLM-DRC on captions without negation"
    config.query_kind = "plain"
    config.variants.clip = row("clip", "CLIP Baseline")
    config.variants.spacevlm = row("spacevlm", "SpaceVLM")
    config.variants.drc = row("drc", "SpaceVLM-DRC (Ours)")
    config.rows = ("clip", "spacevlm", "drc")
    return config
