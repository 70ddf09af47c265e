"""abalone_core.method.model: pooling, projection head, the parts of each contrastive variant, the classifier."""
import pytest
import torch
from torch import nn

from abalone_core.method.losses import contrastive_loss, mulsupcon_loss
from abalone_core.method.memory import LabelQueue, MomentumEncoder
from abalone_core.method.model import ContrastiveModel, Prototypes, ProjectionHead, TextClassifier
from helpers import tiny_bert, tiny_encoder

HIDDEN, DIM, LABELS = 16, 8, 5


def batch(n=4, length=7, seed=0):
    """Token ids (ids >= 5, no special token) and a mask whose documents have 3 to ``length`` tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 50, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    for i in range(n):
        mask[i, 3 + i % (length - 2):] = 0
    ids[mask == 0] = 0
    labels = (torch.rand(n, LABELS, generator=g) < 0.5).float()
    labels[:, 0] = 1  # every document has a label
    return ids, mask, labels


@torch.no_grad()
def test_cls_pooling_is_the_first_token_and_mean_pooling_the_masked_mean():
    ids, mask, _ = batch()
    for pooling in ("cls", "mean"):
        enc = tiny_encoder(pooling=pooling).eval()
        h = enc.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        expected = h[:, 0] if pooling == "cls" else (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        torch.testing.assert_close(enc.represent(ids, mask), expected)
    cls, mean = tiny_encoder(pooling="cls").eval(), tiny_encoder(pooling="mean").eval()
    assert not torch.allclose(cls.represent(ids, mask), mean.represent(ids, mask))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@torch.no_grad()
def test_padding_does_not_change_a_representation(pooling):
    enc = tiny_encoder(pooling=pooling).eval()
    ids, mask, _ = batch(n=1, length=6)
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.long)], 1)
    torch.testing.assert_close(enc.represent(padded, padded_mask), enc.represent(ids, mask), rtol=1e-5, atol=1e-6)


def test_encoder_checks_pooling_and_drops_the_unused_pooler():
    with pytest.raises(ValueError, match="pooling"):
        tiny_encoder(pooling="max")
    backbone = tiny_bert()
    assert backbone.pooler is not None
    enc = tiny_encoder()
    assert enc.backbone.pooler is None and enc.hidden == HIDDEN


def test_projection_head_shapes():
    head = ProjectionHead(HIDDEN, DIM)
    layers = list(head.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (HIDDEN, HIDDEN, DIM)
    assert head(torch.randn(3, HIDDEN)).shape == (3, DIM)
    ids, mask, _ = batch(n=3)
    enc = tiny_encoder(dim=DIM)
    assert enc(ids, mask).shape == (3, DIM) and enc.represent(ids, mask).shape == (3, HIDDEN)
    assert Prototypes(LABELS, DIM)().shape == (LABELS, DIM)


@pytest.mark.parametrize("variant, queue, prototypes", [
    ("base", False, False), ("bqueue", True, False), ("bqproto", True, True), ("msc", True, True),
    ("mulsupcon", True, False),
])
def test_contrastive_variants_build_their_parts(variant, queue, prototypes):
    model = ContrastiveModel(tiny_encoder(dim=DIM), LABELS, variant, queue_size=6, momentum=0.9)
    assert (model.queue is not None, model.key_encoder is not None) == (queue, queue)
    assert (model.prototypes is not None) == prototypes
    if queue:
        assert isinstance(model.queue, LabelQueue) and isinstance(model.key_encoder, MomentumEncoder)
        assert tuple(model.queue.z.shape) == (6, DIM) and tuple(model.queue.y.shape) == (6, LABELS)
        assert not any(p.requires_grad for p in model.key_encoder.parameters())
    if prototypes:
        assert tuple(model.prototypes.weight.shape) == (LABELS, DIM) and model.prototypes.weight.requires_grad

    ids, mask, labels = batch()
    model.train()
    loss = model(ids, mask, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.encoder.head.net[0].weight.grad is not None
    if queue:  # training steps enqueue their keys, evaluation does not
        assert len(model.queue) == 4
        model.eval()
        with torch.no_grad():
            model(ids, mask, labels)
        assert len(model.queue) == 4


@pytest.mark.parametrize("variant", ["base", "bqueue", "msc", "mulsupcon"])
def test_validation_losses_with_and_without_the_queue(variant):
    """val_loss is the training loss in eval mode; val_loss_in_batch leaves the queue out; neither
    touches the queue."""
    model = ContrastiveModel(tiny_encoder(dim=DIM), LABELS, variant, queue_size=6, momentum=0.9)
    ids, mask, labels = batch()
    model.train()
    model(ids, mask, labels)  # fills the queue (when there is one)
    model(*batch(seed=1))
    model.eval()
    with torch.no_grad():
        train_form = float(model(ids, mask, labels))
    filled = None if model.queue is None else model.queue.z.clone()
    losses = model.validation_losses(ids, mask, labels)
    assert losses["val_loss"] == pytest.approx(train_form, rel=1e-6)
    if model.queue is None:
        assert losses["val_loss_in_batch"] == losses["val_loss"]
    else:
        assert torch.equal(model.queue.z, filled)
        assert losses["val_loss_in_batch"] != pytest.approx(losses["val_loss"], rel=1e-4)
        with torch.no_grad():  # the in-batch loss: the loss with no queue at all
            z = model.encoder(ids, mask)
            protos = None if model.prototypes is None else model.prototypes()
            expected = (mulsupcon_loss(z, labels, temperature=0.1) if variant == "mulsupcon" else
                        contrastive_loss(z, labels, variant=variant, temperature=0.1, prototypes=protos))
        assert losses["val_loss_in_batch"] == pytest.approx(float(expected), rel=1e-6)


def test_unknown_or_non_contrastive_variant_is_refused():
    with pytest.raises(ValueError, match="objective must be one of"):
        ContrastiveModel(tiny_encoder(), LABELS, "simclr")
    with pytest.raises(ValueError, match="not a contrastive one"):
        ContrastiveModel(tiny_encoder(), LABELS, "bce")


def test_classifier_drops_the_projection_head():
    enc = tiny_encoder(dim=DIM)
    model = TextClassifier(enc, LABELS, dropout=0.1)
    assert isinstance(model.encoder.head, nn.Identity)
    assert not [n for n, _ in model.named_parameters() if ".head." in n]
    assert (model.classifier.in_features, model.classifier.out_features) == (HIDDEN, LABELS)
    ids, mask, _ = batch(n=3)
    model.eval()
    with torch.no_grad():
        logits = model(ids, mask)
        assert logits.shape == (3, LABELS)
        torch.testing.assert_close(logits, model.classifier(model.encoder.represent(ids, mask)))
