"""The paper's zero-shot claim: CLIP, SpaceVLM and DRC on captions without negation.

Run it on NegBench's plain query files (``images/COCO_val_retrieval.csv``,
``videos/msr_vtt_retrieval.csv``: the same columns as the negated files) or on the synthetic set's
plain captions. A caption the decomposer leaves unnegated is scored with eq. 2 on the caption by
every row, so DRC can move off CLIP only where the decomposer wrongly finds a negation: the report
gives that share beside R@K.
"""

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
