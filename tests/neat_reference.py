"""A PyTorch transcription of NEAT's test-time adaptation (github hhc1997/NEAT,
``src/train_TTA.py:train_one_epoch`` for text-to-image retrieval) on a transformers ``CLIPModel``.

It is the yardstick for :mod:`drc_jax.neat`: the parity test runs both on the same weights, the
benchmark times both. Written from the reference's equations and update loop: the trainable
parameters are the text encoder's residual-block LayerNorms (``collect_params(model,
only_visual=False)``), one ``torch.optim.AdamW(lr, weight_decay)`` for the whole stream, ``steps``
updates per batch, each encoding caption, pos, neg and inv in four forward passes; the batch's
scores are the caption-vs-all-images similarities computed (under ``no_grad``) in the last step's
coarse alignment, before that step's update.

Its loader too (:func:`run_neat_loader`): the caption dataset of
``src/data/coco_negated_dataset.py`` (every text through ``pre_caption``), the shuffled loaders of
``src/data/__init__.py`` and the seeding of ``main_TTA.py``, so order and texts are checked too.
"""

from __future__ import annotations

import ast
import csv
import re

import torch
import torch.nn.functional as F


def text_layer_norm_params(model) -> list[torch.nn.Parameter]:
    """Scale and bias of ``layer_norm1``/``layer_norm2`` of every text encoder layer."""
    return [
        p
        for layer in model.text_model.encoder.layers
        for ln in (layer.layer_norm1, layer.layer_norm2)
        for p in (ln.weight, ln.bias)
    ]


def softmax_entropy(x: torch.Tensor) -> torch.Tensor:
    return -(x.softmax(1) * x.log_softmax(1)).sum(1)


def semantics_reversion_loss(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """Row-wise hinge ``relu(s_ii - s_ij)`` off the diagonal, max over ``j``, mean over ``i``,
    divided by ``tau``."""
    cost = (scores.diag().view(-1, 1).expand_as(scores) - scores).clamp(min=0)
    cost = cost.masked_fill(torch.eye(scores.size(0), dtype=torch.bool), 0)
    return cost.max(1)[0].mean() / tau


def textual_triplet_loss(text, pos, inv) -> torch.Tensor:
    """``5 * mean |t - pos| + mean (2 - |t - inv|)`` with ``nn.PairwiseDistance(p=2)``."""
    pdist = torch.nn.PairwiseDistance(p=2)
    return torch.mean(pdist(text, pos)) * 5 + torch.mean(2 - pdist(text, inv))


class TorchNEAT:
    """Online NEAT over batches of token ids; ``images`` are (N, D) unit-norm embeddings."""

    def __init__(
        self,
        model,
        images: torch.Tensor,
        *,
        lr: float = 2e-4,
        weight_decay: float = 1e-3,
        steps: int = 3,
        temperature: float = 0.03,
        temperature2: float = 0.07,
    ):
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.params = text_layer_norm_params(model)
        for p in self.params:
            p.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay)
        self.images = images
        self.steps, self.temperature, self.temperature2 = steps, temperature, temperature2

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.model.get_text_features(input_ids=ids)
        out = out if isinstance(out, torch.Tensor) else out.pooler_output
        return F.normalize(out, dim=-1)

    def step(self, text_ids, pos_ids, neg_ids, inv_ids):
        """One update; returns (caption x all-image scores of this forward pass, loss terms)."""
        t, p = self.encode(text_ids), self.encode(pos_ids)
        n, v = self.encode(neg_ids), self.encode(inv_ids)
        with torch.no_grad():  # coarse alignment
            scores = t @ self.images.t()
            aligned_scores = (p @ self.images.t()) * (1 - torch.relu(n @ self.images.t()))
            aligned = self.images[aligned_scores.argmax(dim=1)]
        entropy = softmax_entropy((t @ aligned.t()).t() / self.temperature).mean(0)
        sr = semantics_reversion_loss(v @ aligned.t(), self.temperature2)
        tri = textual_triplet_loss(t, p, v)
        loss = entropy + sr + tri
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        terms = {"entropy": entropy, "semantics_reversion": sr, "triplet": tri, "loss": loss}
        return scores, {k: float(x.detach()) for k, x in terms.items()}

    def adapt_batch(self, text_ids, pos_ids, neg_ids, inv_ids):
        """``steps`` updates; returns the last step's scores (B, N) and loss terms."""
        for _ in range(self.steps):
            scores, terms = self.step(text_ids, pos_ids, neg_ids, inv_ids)
        return scores, terms


def pre_caption(caption: str, max_words: int = 50) -> str:
    """``src/data/utils.py:pre_caption`` for a string (the datasets pass ``max_words=77``)."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    if len(words) > max_words:
        caption = " ".join(words[:max_words])
    return caption


class NegatedTextDataset(torch.utils.data.Dataset):
    """``coco_negated_retrieval_eval_text`` (the MSR-VTT one is the same): one item per caption,
    ``(caption, pos, neg, inv, index)``, in file order. The reference reads the CSV with pandas and
    ``ast.literal_eval``; ``csv`` gives the same cells here."""

    def __init__(self, csv_file, max_words: int = 77):
        self.text, self.pos_text, self.neg_text, self.inv_text = [], [], [], []
        with open(csv_file, newline="") as f:
            for row in csv.DictReader(f):
                keys = ("captions", "pos_captions", "neg_captions", "inverted_captions")
                cols = [ast.literal_eval(row[k]) for k in keys]
                for i, caption in enumerate(cols[0]):
                    self.text.append(pre_caption(caption, max_words))
                    self.pos_text.append(pre_caption(cols[1][i], max_words))
                    self.neg_text.append(pre_caption(cols[2][i], max_words))
                    self.inv_text.append(pre_caption(cols[3][i], max_words))

    def __len__(self):
        return len(self.text)

    def __getitem__(self, index):
        return (
            self.text[index],
            self.pos_text[index],
            self.neg_text[index],
            self.inv_text[index],
            index,
        )


def run_neat_loader(neat: TorchNEAT, tokenize, csv_file, *, seed: int = 0, batch_size: int = 64):
    """``main_TTA.py`` + ``train_one_epoch`` for t2i: ``torch.manual_seed(seed)``, the shuffled
    image loader iterated first (it fills ``all_image_embeds``; here the embeddings are given), then
    the shuffled caption loader (drop_last=False), each batch adapted and its scores stored at its
    indices. Returns the (Q, N) score matrix, the caption order, and the dataset."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    images = list(range(len(neat.images)))
    for _ in DataLoader(images, batch_size=batch_size, shuffle=True, drop_last=False):
        pass
    data = NegatedTextDataset(csv_file)
    scores = torch.full((len(data), len(neat.images)), -100.0)
    order = []
    for text, pos, neg, inv, idx in DataLoader(data, batch_size=batch_size, shuffle=True,
                                               drop_last=False):  # fmt: skip
        batch, _ = neat.adapt_batch(*(tokenize(list(t)) for t in (text, pos, neg, inv)))
        scores[idx] = batch.detach()
        order += idx.tolist()
    return scores.numpy(), order, data
